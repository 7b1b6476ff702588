"""Words the demo world writes with: genres, topic vocabularies in English and Spanish."""

from __future__ import annotations

__all__ = ["MUSIC_GENRES", "SPOKEN_GENRES", "TOPICS", "SHOW_TITLES", "SENTENCES", "BOOK_TITLES", "COUNTRIES"]

MUSIC_GENRES = ["rock", "hip-hop", "jazz", "electronic", "classical", "metal", "pop", "folk"]

SPOKEN_GENRES = ["true crime", "comedy", "science", "history", "business", "sports", "technology", "health"]

# Topic words per spoken genre: transcripts and descriptions draw from these, so a
# genre is recoverable from text alone.
TOPICS = {
    "en": {
        "true crime": ["murder", "detective", "investigation", "suspect", "evidence", "trial", "cold case", "forensics", "witness", "verdict"],
        "comedy": ["jokes", "stand-up", "sketch", "laughs", "improv", "comedian", "roast", "awkward stories", "pranks", "satire"],
        "science": ["physics", "biology", "black holes", "evolution", "experiments", "chemistry", "the brain", "climate research", "genetics", "telescopes"],
        "history": ["ancient Rome", "the middle ages", "empires", "world war", "revolutions", "pharaohs", "medieval kings", "archaeology", "the cold war", "explorers"],
        "business": ["startups", "investing", "the stock market", "entrepreneurs", "marketing", "venture capital", "leadership", "negotiation", "economics", "small business"],
        "sports": ["football", "basketball", "the playoffs", "transfers", "coaches", "the championship", "training camp", "tennis", "the league", "athletes"],
        "technology": ["artificial intelligence", "smartphones", "software", "programming", "cybersecurity", "gadgets", "the cloud", "robots", "open source", "chips"],
        "health": ["nutrition", "sleep", "meditation", "fitness", "mental health", "running", "diet", "yoga", "stress", "wellness"],
    },
    "es": {
        "true crime": ["asesinato", "detective", "investigación", "sospechoso", "pruebas", "juicio", "caso sin resolver", "forense", "testigo", "veredicto"],
        "comedy": ["chistes", "monólogos", "humor", "risas", "improvisación", "comediante", "parodia", "anécdotas", "bromas", "sátira"],
        "science": ["física", "biología", "agujeros negros", "evolución", "experimentos", "química", "el cerebro", "clima", "genética", "telescopios"],
        "history": ["la antigua Roma", "la edad media", "imperios", "la guerra mundial", "revoluciones", "faraones", "reyes medievales", "arqueología", "la guerra fría", "exploradores"],
        "business": ["emprendedores", "inversiones", "la bolsa", "empresas", "marketing", "capital de riesgo", "liderazgo", "negociación", "economía", "pequeños negocios"],
        "sports": ["fútbol", "baloncesto", "la liga", "fichajes", "entrenadores", "el campeonato", "la pretemporada", "tenis", "los playoffs", "deportistas"],
        "technology": ["inteligencia artificial", "teléfonos", "software", "programación", "ciberseguridad", "dispositivos", "la nube", "robots", "código abierto", "chips"],
        "health": ["nutrición", "el sueño", "meditación", "ejercicio", "salud mental", "correr", "dieta", "yoga", "estrés", "bienestar"],
    },
}

SHOW_TITLES = {
    "en": ["{T} Weekly", "The {T} Hour", "Inside {T}", "{T} Tonight", "All About {T}", "The {T} Files", "{T} Unpacked", "Talking {T}"],
    "es": ["{T} Semanal", "La Hora de {T}", "Dentro de {T}", "{T} Esta Noche", "Todo Sobre {T}", "Los Archivos de {T}", "Hablando de {T}", "{T} a Fondo"],
}

SENTENCES = {
    "en": [
        "Today we talk about {a} and {b}.",
        "Our guest has spent years studying {a}.",
        "Let us start with {a}, because it explains a lot about {b}.",
        "Many listeners asked us about {a}.",
        "The story of {a} is stranger than you think.",
        "Next week we come back to {b} and {a}.",
        "What does {a} really have to do with {b}?",
        "We close the episode with your questions on {b}.",
    ],
    "es": [
        "Hoy hablamos de {a} y de {b}.",
        "Nuestro invitado lleva años estudiando {a}.",
        "Empezamos con {a}, porque explica mucho sobre {b}.",
        "Muchos oyentes nos preguntaron por {a}.",
        "La historia de {a} es más extraña de lo que parece.",
        "La próxima semana volvemos a {b} y a {a}.",
        "¿Qué tiene que ver {a} con {b}?",
        "Cerramos el episodio con sus preguntas sobre {b}.",
    ],
}

BOOK_TITLES = {
    "en": ["A Short History of {T}", "The Secret of {T}", "Notes on {T}", "The Book of {T}", "Everything About {T}", "Lessons in {T}"],
    "es": ["Breve historia de {T}", "El secreto de {T}", "Notas sobre {T}", "El libro de {T}", "Todo sobre {T}", "Lecciones de {T}"],
}

AUTHORS = ["Ana Ruiz", "John Carter", "Maria Lopez", "David Chen", "Sara Novak", "Luis Ortega", "Emma Stone", "Omar Haddad", "Lucia Fernandez", "Peter Brandt"]

# country -> language of its listeners
COUNTRIES = {"US": "en", "GB": "en", "ES": "es", "MX": "es", "AR": "es"}
