"""What optgate knows about how people say "stop", beyond the configured keywords.

The FCC asks for any reply a reasonable person would read as revoking
consent to be honoured (47 CFR 64.1200(a)(10)); CTIA asks the same of normal
language ("please opt me out"). So besides the keywords of keywords.yaml the
matcher recognises plain requests, sends unclear ones to a person for review,
and leaves alone sentences that merely contain a keyword ("I'll stop by").

Everything here works on folded words (see text.py): lower case, no accents,
apostrophes inside words removed ("don't" is "dont").
"""

from __future__ import annotations

import re

#: Courtesy around a command: "STOP please", "ok stop", "thanks".
POLITE = frozenset(
    "please pls plz plse plez pleas pleaseee thanks thank you thx ty tks thankyou ok okay "
    "k kk hi hey hello sir maam mam just now asap already immediately right away again "
    "sorry".split()
)

#: What may follow an opt-out command: "STOP texting me", "stop all these messages now".
OPT_OUT_OBJECT = frozenset(
    "me us it this that these those them all everything texting texts text txt txts "
    "txting sms messages message msgs msg messaging sending send contacting spamming spam "
    "calling calls emails emailing for good forever anymore any more ever and bothering "
    "harassing the your from list lists number my subscription subscriptions "
    "notifications alerts promotions promos marketing offers updates ads bugging pestering "
    "communication communications contact".split()
)

#: What may come before an opt-out command: "I want to stop", "I said STOP", "can you stop".
OPT_OUT_LEAD = frozenset(
    "i said want to wanna would like id can could will you just so told already asked ya "
    "u no need please pls plz ok okay now hey hi".split()
)

#: What may follow an opt-in command: "START again", "yes please".
OPT_IN_AFTER = frozenset({"me", "again", "back", "texting", "texts", "messages"})

#: What may come before or after HELP: "I need help", "help me".
HELP_AROUND = frozenset({"i", "need", "me", "us", "info", "information"})

#: Words around a topic in a topic command: "STOP the PRICE DROP alerts".
TOPIC_FILLER = frozenset(
    "the your my those these all and or plus also alerts alert notifications notification "
    "texts text messages message msgs updates update offers offer emails deals".split()
)

#: After a topic, words that widen a topic opt-out to everything: "STOP PRICE DROP and all".
EVERYTHING = frozenset({"all", "everything", "everyone", "anything", "else", "any", "every"})

#: Opt-out words that start a short message worth a person's look when nothing
#: else matched ("stop the madness"); other keywords (END, CANCEL) start too many
#: ordinary sentences ("cancel my appointment").
REVIEW_FIRST_WORDS = frozenset(
    {"stop", "stopall", "unsubscribe", "unsub", "optout", "revoke", "quit"}
)

#: "stop by", "stop in": visiting, not revoking; "stop sign", "stop light": things.
STOP_IDIOMS = frozenset(
    "by in over at off for and there here after sign signs light lights lamp button "
    "watch shop n".split()
)

#: The FCC's per-se words (and their one-word forms) that may open a longer text:
#: "STOP, you people are relentless" (47 CFR 64.1200(a)(10)).
PER_SE_OPENING = frozenset({"stop", "stopall", "quit", "end", "cancel", "revoke", "unsubscribe",
                            "unsub", "optout"})  # fmt: skip
#: Of those, the ones no ordinary sentence opens with: whatever follows, an opt-out.
PER_SE_ALWAYS = frozenset({"unsubscribe", "unsub", "optout"})
#: Of those, verbs that do open ordinary sentences ("End of lease", "Cancel my 3pm"):
#: only a clause of their own, or the texts as object, make them an opt-out.
PER_SE_ORDINARY = frozenset({"end", "cancel"})
#: After an opening STOP or QUIT, words that say it is said to us: "STOP you people ...",
#: "Stop it already", "quit texting".
ADDRESSED = frozenset(
    "you u ya yall guys people now already immediately it this that these those with "
    "texting messaging sending contacting calling spamming bothering harassing emailing "
    "me us".split()
)
#: After an opening END or CANCEL, words that say it is about our texts.
TEXTS_OBJECT = frozenset(
    "texting texts txts messages msgs sms messaging subscription subscriptions "
    "notifications alerts promotions marketing".split()
)

#: Real words one letter away from an opt-out keyword, which are not misspellings of it.
NOT_MISSPELLINGS = frozenset(
    "step shop slop stow atop stoop stops top swop stoa stob quiz quite quip suit quilt "
    "quits quid quiet cancer remote removed remover removes revoked revokes arrest "
    "unsubscribed unsubscribes stopped canceled cancels cancelled".split()
)

_TEXTING = r"(?:text|txt|texting|message|messaging|msg|sms|contact|contacting|spam|spamming|" \
    r"call|calling|email|emailing|send|sending|bother|bothering|harass|harassing|hit)"  # fmt: skip
_TEXTS = r"(?:texts?|txts?|messages?|msgs?|sms|texting|messaging|spam|marketing|promos?|" \
    r"promotions?|offers?|notifications?|alerts?|ads)"  # fmt: skip
_ME = r"(?:me|us|this number|my (?:phone |cell )?number)"
_LIST = r"(?:list|lists|texts|messages|system|database|contacts|texting list|sms list|" \
    r"mailing list|text list|contact list|call list|marketing list)"  # fmt: skip

#: Plain requests that are an opt-out wherever they stand in a message.
OPT_OUT_PHRASES = tuple(
    re.compile(pattern)
    for pattern in (
        rf"\b(?:dont|do not|never|please dont|stop|quit|cease) {_TEXTING}(?:ing)? {_ME}\b",
        rf"\bno (?:more|further) {_TEXTS}\b",
        rf"\b(?:remove|delete|erase) {_ME}\b",
        rf"\b(?:remove|take|get|drop|put) {_ME} (?:off|from|out of) (?:of )?"
        rf"(?:your|the|this|ur|ya|all|all your) {_LIST}\b",
        # "take me off" ends the message: "take me off the waitlist" is something else.
        rf"\btake {_ME} off(?: (?:please|pls|now|thanks|thank you))?$",
        r"\bopt me out\b",
        r"\b(?:i|we) (?:dont|do not|no longer|never) (?:want|wish|need|like)"
        rf"(?: to (?:receive|get))? (?:any )?(?:more )?(?:of )?"
        rf"(?:your |these |this |the |those )?{_TEXTS}\b",
        r"\b(?:i|we) (?:want|wish|would like|d like|need) to (?:unsubscribe|opt out|be removed|"
        r"stop (?:receiving|getting))\b",
        r"\b(?:lose|forget|delete) (?:my|this) number\b",
        r"\bunsubscribe me\b",
    )
)

#: Words that are an opt-out anywhere, unless the message asks a question about them.
OPT_OUT_ANYWHERE = re.compile(r"\b(?:unsubscribe|unsub|opt out|optout)\b")

#: Plain requests to be subscribed again; the whole message must be one of these.
OPT_IN_PHRASES = re.compile(
    r"^(?:(?:please|pls|yes|ok) )?(?:opt me (?:back )?in|resubscribe(?: me)?|re subscribe(?: me)?|"
    r"subscribe me(?: again| back)?|sign me (?:back )?up(?: again)?|add me back(?: on)?|"
    r"put me back on (?:the |your )?list)(?: please| pls| again| thanks| thank you)?$"
)

#: Could be a revocation, could be something else: a person decides (R10).
REVIEW_PHRASES = re.compile(
    r"\bwrong (?:number|person|#|guy|girl|contact|phone|lady|man)\b"
    r"|\bnot (?:the right|the correct) (?:person|number)\b"
    r"|\bleave (?:me|us) alone\b|\bgo away\b|\bget lost\b|\bback off\b"
    r"|\bnot interested\b|^no thanks?(?: you)?$|^no thank u$|^nope$"
    r"|\b(?:never|didnt|did not|dont remember|do not remember) (?:signed|sign|signing) up\b"
    r"|\bhow did you get (?:my|this) number\b|\bwho gave you (?:my|this) number\b"
    r"|\b(?:spam|spammer|spammers|scam|scammer|harassment)\b"
    r"|\bi (?:will|am going to|ll|m going to) (?:block|report)\b|\breported\b"
    r"|\b(?:fuck|f) (?:off|you)\b|\bstfu\b|\bpiss off\b|\bscrew you\b|\bbugger off\b"
)

#: "unsubscribe" inside a question ("how do I unsubscribe?"): a person looks.
QUESTION_WORDS = frozenset(
    {"how", "what", "why", "where", "when", "can", "do", "does", "will", "if"}
)


def damerau_levenshtein_at_most_one(a: str, b: str) -> bool:
    """Whether ``a`` and ``b`` differ by at most one edit (insert, delete, replace, swap)."""
    if a == b:
        return True
    if abs(len(a) - len(b)) > 1:
        return False
    if len(a) == len(b):
        diff = [i for i in range(len(a)) if a[i] != b[i]]
        if len(diff) == 1:
            return True
        i, j = [*diff, 0, 0][:2]
        return len(diff) == 2 and j == i + 1 and a[i] == b[j] and a[j] == b[i]
    shorter, longer = (a, b) if len(a) < len(b) else (b, a)
    return any(longer[:i] + longer[i + 1 :] == shorter for i in range(len(longer)))


def within_two_edits(a: str, b: str) -> bool:
    """Whether ``a`` and ``b`` are at most two edits apart (for long words like UNSUBSCRIBE)."""
    if abs(len(a) - len(b)) > 2:
        return False
    previous = list(range(len(b) + 1))
    for i, char_a in enumerate(a, start=1):
        current = [i] + [0] * len(b)
        for j, char_b in enumerate(b, start=1):
            current[j] = min(
                previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (char_a != char_b)
            )
        if min(current) > 2:
            return False
        previous = current
    return previous[-1] <= 2
