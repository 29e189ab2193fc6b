"""The weekly ugeseddel by e-mail: subscribers, double opt-in, one-click unsubscribe, sending.

Exists only when aggregator.toml has a `[mail]` table. The only package that speaks SMTP
(smtplib, in a thread) and the owner of `DIR/subscribers.json`.
"""
