"""Conversations (classic) on the twin: services, their webhook configuration, conversations,
participants and messages (``/v1/Services/{ChatServiceSid}/…``, form-encoded, as the
``twilio_conversations_v1.json`` spec has them), and the post-event webhooks a service sends.

What Twilio does and the twin plays (issue 17):

- A service's post-event webhook (``PostWebhookUrl``, ``Method``, ``Filters``) gets the
  post-events its ``Filters`` name, and every change goes to the Event Streams sinks subscribed
  to it (:mod:`service.twin.classic.events`, in order, through the twin's one signed sender).
- A change made through the REST API fires its webhooks **only when the request carries
  ``X-Twilio-Webhook-Enabled: true``**; without it the change happens silently (Event Streams
  still carries it). A change made by a chat user through the Conversations SDK always fires
  them: the twin plays that with ``POST /_twin/simulate/classic/message {"service",
  "conversation", "author", "body"}`` (``Source=SDK``); ``POST /_twin/classic/drained`` answers
  once every queued webhook and event was sent.
- Dates are ISO 8601 UTC to the millisecond (Twilio's are to the second).
- ``State=closed`` fires ``onConversationUpdated`` and ``onConversationStateUpdated``
  (``Reason=API``); a closed conversation takes no new messages (Twilio's 50353-style 400).

Modules: services and their webhook configuration (:mod:`.services`), conversations and
participants (:mod:`.conversations`), messages (:mod:`.messages`), what a change sends
(:mod:`.events`), and the routes assembled (:mod:`.routes`).

Not modelled: pre-event webhooks, per-conversation webhooks, the account-level (global)
webhook, users, roles, bindings, media, delivery receipts.
"""
