// Expand the events of an .ics file with Mozilla's ical.js, independently of our Python code.
// Usage: node tests/js/expand.mjs FILE WINDOW_START WINDOW_END [LIMIT]
// Prints JSON: [{uid, start, end, summary, status}] sorted; date-times as UTC ISO strings,
// all-day as YYYY-MM-DD. Overrides (RECURRENCE-ID) are related to their series, as ical.js
// wants, so a changed date shows its own time, title and status.
import fs from "node:fs";
import ICAL from "ical.js";

const [file, from, to, limitArg] = process.argv.slice(2);
const limit = Number(limitArg || 1000);
const root = new ICAL.Component(ICAL.parse(fs.readFileSync(file, "utf8")));

// ical.js resolves TZIDs only through its TimezoneService: register the file's own zones.
for (const vtimezone of root.getAllSubcomponents("vtimezone")) {
  ICAL.TimezoneService.register(vtimezone);
}

const windowStart = Date.parse(from);
const windowEnd = Date.parse(to);

function show(time) {
  if (time.isDate) {
    return time.toString(); // YYYY-MM-DD
  }
  return new Date(time.toUnixTime() * 1000).toISOString().replace(".000Z", "Z");
}

function instant(time) {
  // All-day dates are compared as UTC midnight; the caller's window is wide enough for them.
  return time.toUnixTime() * 1000;
}

const masters = [];
const exceptions = [];
for (const vevent of root.getAllSubcomponents("vevent")) {
  (vevent.hasProperty("recurrence-id") ? exceptions : masters).push(vevent);
}
const byUid = new Map();
for (const vevent of masters) {
  const event = new ICAL.Event(vevent);
  byUid.set(event.uid, event);
}
for (const vevent of exceptions) {
  const master = byUid.get(vevent.getFirstPropertyValue("uid"));
  if (master) master.relateException(vevent);
}

const found = [];
for (const event of byUid.values()) {
  const iterator = event.iterator();
  for (let n = 0, next; n < limit && (next = iterator.next()); n++) {
    // getOccurrenceDetails adds the elapsed duration to the wall-clock start, which is an hour
    // off for an event spanning a DST change; a single event keeps its own DTEND instead.
    const details = event.isRecurring()
      ? event.getOccurrenceDetails(next)
      : { startDate: event.startDate, endDate: event.endDate, item: event };
    // A moved date is found at its original place in the rule: filter on its own start.
    if (instant(next) >= windowEnd && instant(details.startDate) >= windowEnd) break;
    if (instant(details.startDate) >= windowEnd) continue;
    if (instant(details.endDate) <= windowStart) continue;
    found.push({
      uid: event.uid,
      start: show(details.startDate),
      end: show(details.endDate),
      summary: details.item.summary,
      status: details.item.component.getFirstPropertyValue("status") || "",
    });
  }
}
found.sort((a, b) => (a.uid + a.start < b.uid + b.start ? -1 : a.uid + a.start > b.uid + b.start ? 1 : 0));
process.stdout.write(JSON.stringify(found) + "\n");
