"""A second, fresh validation set of broad queries (benchmarks only; issue 28).

The first validation half (benchmarks/search_queries.py, positions 1, 3, 5) had been
looked at query by query when the genre-precision shortfall was analysed (docs/search.md,
"Why genre precision stops near 0.90"), so a design chosen after that analysis cannot be
judged on it alone. These 57 requests (3 per Apple genre) were written on 2026-12-07
before any search ran on them, labelled by Apple's genre tree (a subgenre's request
carries its parent genre), and they are used only to report, never to choose.
"""

from __future__ import annotations

__all__ = ["FRESH_QUERIES", "fresh"]

FRESH_QUERIES: dict[str, list[str]] = {
    "Arts": [
        "podcasts about cooking, recipes and chefs",
        "conversations with novelists about how they write",
        "makeup, skincare and fashion trends",
    ],
    "Business": [
        "how to negotiate a raise and advance my career",
        "stock picking and building a retirement portfolio",
        "running a nonprofit organization and fundraising",
    ],
    "Comedy": [
        "stand-up comedians interviewing other comedians",
        "improv comedy games and made-up scenes",
        "a goofy show with friends laughing about their week",
    ],
    "Education": [
        "how-to guides for everyday skills",
        "learn spanish while commuting",
        "study tips and online courses for adult learners",
    ],
    "Fiction": [
        "a radio drama full of suspense and cliffhangers",
        "comedic fiction with silly characters in an ongoing story",
        "space opera told in episodes with a full cast",
    ],
    "Government": [
        "how federal laws get written and passed",
        "public servants explain how government agencies work",
        "state legislatures and policy debates explained by officials",
    ],
    "History": [
        "the ancient romans and greeks",
        "stories of world war two battles",
        "forgotten events from centuries past retold",
    ],
    "Health & Fitness": [
        "strength training and workout routines",
        "healthy eating and nutrition science for weight loss",
        "coping with stress and improving sleep",
    ],
    "Kids & Family": [
        "bedtime stories for young children",
        "advice for new parents raising toddlers",
        "learning about animals and pets for kids",
    ],
    "Leisure": [
        "gardening tips and growing vegetables at home",
        "video game reviews and gaming news",
        "classic cars and car restoration",
    ],
    "Music": [
        "interviews with songwriters about their albums",
        "the history of jazz and blues",
        "reviews of new hip hop releases",
    ],
    "News": [
        "a daily briefing on the top headlines",
        "political commentary on this week's news",
        "celebrity and entertainment news roundup",
    ],
    "Religion & Spirituality": [
        "bible study and sermons",
        "meditation and buddhist teachings",
        "faith, prayer and spiritual growth",
    ],
    "Science": [
        "astronomy, black holes and the universe",
        "how evolution and biology shape life on earth",
        "physics explained for curious minds",
    ],
    "Society & Culture": [
        "personal stories about love, dating and relationships",
        "documentary storytelling about ordinary people's lives",
        "deep conversations about the meaning of life",
    ],
    "Sports": [
        "nfl analysis and fantasy football advice",
        "soccer transfers and premier league matches",
        "golf tips and tournament coverage",
    ],
    "Technology": [
        "the latest gadgets, smartphones and apps",
        "software engineering and programming careers",
        "artificial intelligence and the future of tech companies",
    ],
    "True Crime": [
        "unsolved murders and missing persons cases",
        "investigating wrongful convictions",
        "infamous con artists and fraud schemes",
    ],
    "TV & Film": [
        "movie reviews and box office talk",
        "recapping each episode of popular tv series",
        "film history and classic hollywood",
    ],
}


def fresh() -> list[tuple[str, str]]:
    """(genre, query) pairs of the fresh validation set."""
    return [(g, q) for g, qs in FRESH_QUERIES.items() for q in qs]
