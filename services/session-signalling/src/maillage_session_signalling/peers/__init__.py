"""aiortc peers: the server's pre-flight echo peer and the reference kiosk/responder peers."""
