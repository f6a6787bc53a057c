"""The staff web page: approvals, the phone-call list, delivery failures, refused events,
the patron page — server-rendered, over the same functions as ``omitama-notify review``.

``omitama-notify staff add ID`` creates an account; ``omitama-notify staff-web`` serves it.
"""
