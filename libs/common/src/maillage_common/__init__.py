"""Service chassis shared by every Maillage service.

Only what every service needs lives here: settings base, event envelope, outbox and
inbox, the reliable consumer, auth, HTTP problems and health, observability.
"""
