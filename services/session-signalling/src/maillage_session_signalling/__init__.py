"""Maillage session-signalling.

WebRTC teleconsultation sessions between kiosk, nurse and responder
(WebSocket signalling, aiortc peers).
"""
