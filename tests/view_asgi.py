"""graphsite as a project that only includes graphapp.urls: the stream served
by the Django view (graphapp.views.events), behind the whole middleware chain.

The end-to-end tests run the stream's behaviour on this and on graphsite's
own application (graphapp.asgi in front of Django) alike.
"""

from graphapp.bodylimit import BodyLimit
from graphsite.asgi import django_application

application = BodyLimit(django_application, json_prefixes=["/graph/api/"])
