"""iCalendar: writing calendars, reading them, and their time zones."""
