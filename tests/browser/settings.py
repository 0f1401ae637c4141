"""Settings for the server process the browser tests start: the suite's settings, static files from the finders.

Tests run with DEBUG off and no collectstatic, so WhiteNoise must look the files
up through the staticfiles finders (app static dirs and the npm client under
node_modules), as it does under runserver.
"""

from tests.settings import *  # noqa: F403

WHITENOISE_USE_FINDERS = True
