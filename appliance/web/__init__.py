"""Web: the Flask application factory, its blueprints, and the gunicorn server that runs it."""
