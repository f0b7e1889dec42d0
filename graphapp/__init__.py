"""graphapp: a knowledge graph in Django models, streamed live as Server-Sent Events."""
