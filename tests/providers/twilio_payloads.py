"""Twilio webhook bodies as Twilio posts them: (name, value) pairs in arrival order.

Shapes follow Twilio's own documentation and captured requests (docs/compliance.md,
Inbound texts and retries, and Delivery receipts):
https://www.twilio.com/docs/messaging/guides/webhook-request for inbound texts,
https://www.twilio.com/docs/messaging/guides/outbound-message-status-in-status-callbacks
for delivery receipts. The field order is the one Twilio uses (it is not alphabetical:
the signature sorts names itself). A name may repeat. The SIDs have the real format
(two letters and 32 hex digits) but belong to no account.
"""

from __future__ import annotations

from tests.conftest import TWILIO_SID

Form = list[tuple[str, str]]

#: Our lines: a US long code, and the Messaging Service it belongs to in some payloads.
LINE = "+15005550006"
SERVICE = "MG" + "9f8e7d6c5b4a3210" * 2
#: A contact writing to us.
CONTACT = "+14155552671"

SMS_SID = "SM" + "1a2b3c4d5e6f7a8b" * 2
MMS_SID = "MM" + "0f1e2d3c4b5a6978" * 2
OUTBOUND_SID = "SM" + "7c6d5e4f3a2b1c0d" * 2


def insert_after(form: Form, name: str, added: tuple[str, str]) -> Form:
    """``form`` with the field ``added`` right after its field ``name``."""
    at = [field for field, _ in form].index(name) + 1
    return [*form[:at], added, *form[at:]]


# Inbound SMS to a long code outside any Messaging Service: the body Twilio documents
# (and a capture shows) field for field, geo fields included; SmsMessageSid and SmsSid
# repeat MessageSid.
INBOUND_SMS: Form = [
    ("ToCountry", "US"),
    ("ToState", "CA"),
    ("SmsMessageSid", SMS_SID),
    ("NumMedia", "0"),
    ("ToCity", "SAN FRANCISCO"),
    ("FromZip", "94105"),
    ("SmsSid", SMS_SID),
    ("FromState", "CA"),
    ("SmsStatus", "received"),
    ("FromCity", "SAN FRANCISCO"),
    ("Body", "Hi, what time do you open on Saturday?"),
    ("FromCountry", "US"),
    ("To", LINE),
    ("ToZip", "94105"),
    ("NumSegments", "1"),
    ("MessageSid", SMS_SID),
    ("AccountSid", TWILIO_SID),
    ("From", CONTACT),
    ("ApiVersion", "2010-04-01"),
]

# The same inbound SMS to a number in a Messaging Service: Twilio adds
# MessagingServiceSid after To.
INBOUND_SMS_IN_SERVICE: Form = insert_after(INBOUND_SMS, "To", ("MessagingServiceSid", SERVICE))


def advanced_opt_out(body: str, opt_out_type: str) -> Form:
    """An inbound SMS to a Messaging Service with Advanced Opt-Out on (docs/compliance.md,
    Messaging Services and Advanced Opt-Out).

    Twilio has already acted on the keyword and says which kind it was in OptOutType
    (STOP, START or HELP), right after the Body.
    """
    form: Form = []
    for name, value in INBOUND_SMS_IN_SERVICE:
        form.append((name, body if name == "Body" else value))
        if name == "Body":
            form.append(("OptOutType", opt_out_type))
    return form


INBOUND_STOP_ADVANCED = advanced_opt_out("STOP", "STOP")
INBOUND_START_ADVANCED = advanced_opt_out("Start", "START")
INBOUND_HELP_ADVANCED = advanced_opt_out("help", "HELP")

# Inbound MMS with two pictures: the SID starts MM, NumMedia counts the items, and each
# item has MediaContentType{N} and MediaUrl{N} (URLs under the message's Media list).
INBOUND_MMS: Form = [
    ("ToCountry", "US"),
    ("MediaContentType0", "image/jpeg"),
    ("MediaContentType1", "image/png"),
    ("ToState", "CA"),
    ("SmsMessageSid", MMS_SID),
    ("NumMedia", "2"),
    ("ToCity", "SAN FRANCISCO"),
    ("FromZip", "94105"),
    ("SmsSid", MMS_SID),
    ("FromState", "CA"),
    ("SmsStatus", "received"),
    ("FromCity", "SAN FRANCISCO"),
    ("Body", "Is this the right one?"),
    ("FromCountry", "US"),
    ("To", LINE),
    ("ToZip", "94105"),
    ("NumSegments", "1"),
    ("MessageSid", MMS_SID),
    ("AccountSid", TWILIO_SID),
    ("From", CONTACT),
    (
        "MediaUrl0",
        f"https://api.twilio.com/2010-04-01/Accounts/{TWILIO_SID}/Messages/{MMS_SID}"
        "/Media/ME" + "11112222333344445555666677778888",
    ),
    (
        "MediaUrl1",
        f"https://api.twilio.com/2010-04-01/Accounts/{TWILIO_SID}/Messages/{MMS_SID}"
        "/Media/ME" + "99990000aaaabbbbccccddddeeeeffff",
    ),
    ("ApiVersion", "2010-04-01"),
]

# An inbound text in UCS-2 (accents and an emoji): two segments, reassembled by Twilio.
INBOUND_UNICODE: Form = [
    (name, {"Body": "Arrêtez 🛑 — ça suffit, merci", "NumSegments": "2"}.get(name, value))
    for name, value in INBOUND_SMS
]

# Delivery receipt for an outbound SMS sent through a Messaging Service: MessageStatus
# and its legacy twin SmsStatus, ErrorCode and the carrier's RawDlrDoneDate (YYMMDDhhmm,
# no time zone) as Twilio posts them on undelivered (changelog 2023-02-14).
STATUS_UNDELIVERED: Form = [
    ("ErrorCode", "30003"),
    ("SmsSid", OUTBOUND_SID),
    ("SmsStatus", "undelivered"),
    ("MessageStatus", "undelivered"),
    ("To", CONTACT),
    ("MessagingServiceSid", SERVICE),
    ("MessageSid", OUTBOUND_SID),
    ("AccountSid", TWILIO_SID),
    ("From", LINE),
    ("ApiVersion", "2010-04-01"),
    ("RawDlrDoneDate", "2402141530"),
]

# Delivery receipt "delivered" for a message sent from a number (no Messaging Service):
# no ErrorCode at all.
STATUS_DELIVERED: Form = [
    ("SmsSid", OUTBOUND_SID),
    ("SmsStatus", "delivered"),
    ("MessageStatus", "delivered"),
    ("To", CONTACT),
    ("MessageSid", OUTBOUND_SID),
    ("AccountSid", TWILIO_SID),
    ("From", LINE),
    ("ApiVersion", "2010-04-01"),
    ("RawDlrDoneDate", "2402141529"),
]

# An older receipt shape: only the legacy SmsStatus, no MessageStatus.
STATUS_LEGACY_SMSSTATUS: Form = [
    ("SmsSid", OUTBOUND_SID),
    ("SmsStatus", "sent"),
    ("To", CONTACT),
    ("MessageSid", OUTBOUND_SID),
    ("AccountSid", TWILIO_SID),
    ("From", LINE),
    ("ApiVersion", "2010-04-01"),
]

# What Twilio's Messages API answers to a create (201): the resource, trimmed to the
# fields the twilio client reads; the rest are null as on a fresh message.
CREATED_MESSAGE: dict[str, object] = {
    "sid": OUTBOUND_SID,
    "account_sid": TWILIO_SID,
    "status": "queued",
    "to": CONTACT,
    "from": LINE,
    "body": "Your code is 1234",
    "direction": "outbound-api",
    "num_segments": "1",
    "num_media": "0",
    "messaging_service_sid": None,
    "error_code": None,
    "error_message": None,
    "price": None,
    "date_created": "Wed, 14 Feb 2024 15:30:00 +0000",
    "date_updated": "Wed, 14 Feb 2024 15:30:00 +0000",
    "date_sent": None,
    "api_version": "2010-04-01",
    "uri": f"/2010-04-01/Accounts/{TWILIO_SID}/Messages/{OUTBOUND_SID}.json",
}


def twilio_error(code: int, message: str, status: int) -> dict[str, object]:
    """Twilio's REST error body (the legacy shape the Messages API answers)."""
    return {
        "code": code,
        "message": message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }
