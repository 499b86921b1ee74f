from django.urls import path, re_path

from . import consumers

websocket_urlpatterns = [
    path("ws/threads/<int:thread_id>/", consumers.ThreadConsumer.as_asgi()),
]

# After the above: any other path (a thread id that is not a number, say) is refused with 4404
# instead of failing the handshake with a 500 ("No route found").
websocket_fallback = re_path(r"", consumers.NotFoundConsumer.as_asgi())
