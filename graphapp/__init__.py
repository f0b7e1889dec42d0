"""graphapp: a knowledge graph in Django models, streamed live as Server-Sent Events."""

__version__ = "0.2.0.dev0"
