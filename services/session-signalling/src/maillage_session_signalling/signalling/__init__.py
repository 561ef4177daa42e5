"""The live part: join tokens, the signalling protocol, rooms and the WebSocket endpoint."""
