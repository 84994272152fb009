"""The per-device Celery worker. ``python -m worker --device N`` runs one."""
