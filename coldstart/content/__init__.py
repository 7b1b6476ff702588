"""Content ML: transcription (speech), text embeddings, faiss indexes, search, intent, adaptation."""
