"""Benchmark queries for genre precision on the Apple Podcasts catalogue (benchmarks only).

Six natural-language requests per Apple genre, written for this benchmark to describe
what a listener wants, never copied from a show description. The first two of each
genre are the project's original 38 queries. Split: positions 0, 2, 4 of each genre
are the TUNING half (every weight and design choice is made on them), positions
1, 3, 5 the VALIDATION half (reported once). The product never sees these strings.
"""

from __future__ import annotations

__all__ = ["QUERIES", "split"]

QUERIES: dict[str, list[str]] = {
    "Arts": [
        "interviews with painters, designers and poets about their creative process",
        "books, literature and the craft of writing",
        "a photographer and an architect talk about visual beauty and design",
        "reviews of new novels and chats with authors about their latest book",
        "behind the scenes of theatre productions and dance performances",
        "how illustrators and fashion designers find inspiration",
    ],
    "Business": [
        "how founders raise money and grow a startup",
        "investing, markets and personal finance advice",
        "lessons on leadership and managing a team at work",
        "how to turn a side hustle into a profitable company",
        "real estate investing and earning passive income",
        "marketing, sales and growing your brand online",
    ],
    "Comedy": [
        "funny banter and jokes from stand-up comedians",
        "hilarious improvised conversations that make you laugh",
        "two friends riffing on silly topics and cracking each other up",
        "a lighthearted show that will make me laugh on my commute",
        "sketches, parodies and absurd humor",
        "comics roasting each other and telling embarrassing stories",
    ],
    "Education": [
        "learn a new language with short daily lessons",
        "tips for students and teachers on studying better",
        "explain complicated ideas simply so I learn something new every day",
        "english vocabulary and grammar practice for learners",
        "self improvement lessons on productivity and learning new skills",
        "lectures and courses from university professors",
    ],
    "Fiction": [
        "audio drama with actors performing a serialized story",
        "scary short stories read aloud",
        "a fantasy adventure told as an audio play with sound effects",
        "a science fiction serial where each episode continues the plot",
        "ghost stories and creepy tales performed by voice actors",
        "original short fiction performed by a narrator every week",
    ],
    "Government": [
        "how congress, elections and public policy work",
        "inside the military, federal agencies and national security",
        "what the supreme court decided and what it means for the law",
        "city council and local government decisions explained",
        "veterans and service members talk about defense and foreign affairs",
        "how federal regulations and agencies affect citizens",
    ],
    "Health & Fitness": [
        "workouts, nutrition and losing weight",
        "mental health, anxiety and mindfulness advice",
        "running, strength training and getting in shape",
        "healthy eating, diets and improving gut health",
        "sleep better and reduce stress with meditation",
        "doctors explain medicine, wellness and longevity",
    ],
    "History": [
        "stories from ancient rome and medieval europe",
        "what really happened in world war two",
        "the lives of kings, queens and emperors",
        "the american civil war and the founding fathers",
        "forgotten events from the past told as stories",
        "archaeology and ancient civilizations like egypt and greece",
    ],
    "Kids & Family": [
        "bedtime stories for children",
        "parenting advice for moms and dads raising toddlers",
        "fun science facts and stories for curious kids",
        "a show my eight year old can listen to in the car",
        "tips on family life, pregnancy and newborn babies",
        "fairy tales and adventures for young listeners",
    ],
    "Leisure": [
        "video games, gaming news and reviews",
        "cars, gardening, crafts and other hobbies",
        "board games, tabletop role playing and dungeons and dragons",
        "anime and manga series discussed by fans",
        "home improvement, diy projects and growing vegetables",
        "airplanes, pilots and aviation enthusiasts",
    ],
    "Music": [
        "conversations with musicians about songs and albums",
        "the stories behind hip hop and rock records",
        "new album releases and reviews of the best tracks",
        "music theory and how songs are produced in the studio",
        "classical composers and orchestral works explained",
        "djs, electronic dance mixes and the club scene",
    ],
    "News": [
        "a daily briefing on today's headlines",
        "political news and analysis of the week's events",
        "a quick morning update on what happened overnight",
        "world news from correspondents around the globe",
        "journalists discuss the biggest stories of the day",
        "breaking news coverage and current events",
    ],
    "Religion & Spirituality": [
        "sermons and bible teaching from a pastor",
        "faith, prayer and a relationship with god",
        "meditation, buddhism and spiritual growth",
        "daily devotionals and scripture readings",
        "conversations about the catholic church and the saints",
        "islam, the quran and muslim life",
    ],
    "Science": [
        "space, physics and the mysteries of the universe",
        "biology, evolution and new discoveries by researchers",
        "how the brain works and the psychology of behaviour",
        "climate change, nature and the environment explained by scientists",
        "astronomy and the search for life on other planets",
        "the math and engineering behind everyday things",
    ],
    "Society & Culture": [
        "personal stories about relationships and modern life",
        "conversations about identity, race and culture in america",
        "intimate conversations about love, dating and friendship",
        "thoughtful interviews about philosophy and how to live a good life",
        "stories of ordinary people with extraordinary experiences",
        "travel stories from places around the world",
    ],
    "Sports": [
        "football and basketball analysis and fantasy picks",
        "interviews with athletes about training and competition",
        "soccer news, transfer rumours and match previews",
        "golf, tennis and the stories of great champions",
        "baseball trades and the pennant race",
        "mixed martial arts, boxing fights and predictions",
    ],
    "Technology": [
        "gadgets, apple and the latest in silicon valley",
        "software engineering, artificial intelligence and programming",
        "reviews of new smartphones and laptops",
        "cybersecurity, hackers and data privacy",
        "web development and coding tips for developers",
        "how big tech companies shape our digital lives",
    ],
    "TV & Film": [
        "movie reviews and reactions to the latest blockbusters",
        "recaps of tv series episodes and streaming shows",
        "filmmakers and actors talk about making movies",
        "a rewatch podcast about a classic sitcom",
        "oscar predictions and awards season coverage",
        "star wars, marvel and superhero franchise discussion",
    ],
    "True Crime": [
        "stories about serial killers and unsolved cases",
        "murder investigations, trials and missing persons",
        "cold cases, detectives and forensic evidence",
        "con artists, frauds and scams exposed",
        "a journalist reinvestigates a wrongful conviction",
        "mafia, gangsters and organized crime stories",
    ],
}


def split(half: str) -> list[tuple[str, str]]:
    """(genre, query) pairs of one half: "tuning" (positions 0, 2, 4), "validation" (1, 3, 5) or "all"."""
    if half not in ("tuning", "validation", "all"):
        raise ValueError(f"half must be tuning, validation or all, not {half!r}")
    start = {"tuning": 0, "validation": 1}.get(half)
    return [
        (g, q)
        for g, qs in QUERIES.items()
        for i, q in enumerate(qs)
        if start is None or i % 2 == start
    ]
