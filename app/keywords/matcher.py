"""The matcher: a text (and the line it came to) in, an Intent out. Pure: no I/O.

In order, the first that applies wins:

1. The whole text is a keyword (after folding, see text.py): its intent, ``exact``.
2. A stop word is negated ("don't stop"): a person reviews it.
3. A command followed by topics ("STOP PRICE DROP", "start new arrivals"): a
   topic intent; with "and everything" a full opt-out.
4. Commands with only courtesy and objects around them ("please stop texting
   me", "YES STOP"): the command's intent; an opt-out wins over anything else.
5. Plain-language requests (phrases.py): opt-out, opt-in.
6. Maybe a revocation ("wrong number", "stopp", "stop the madness"): review.
7. Otherwise nothing: a text that merely contains a keyword changes nothing.

Keywords and topic phrases live in dictionaries compiled once per scope (the
defaults, each override), so the cost of a text does not grow with the number
of responders: it is a handful of lookups per word.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from app.keywords import phrases
from app.keywords.config import Config, Responder, Rules, render
from app.keywords.intent import NO_INTENT, Action, Intent
from app.keywords.text import words


@dataclass(frozen=True)
class _Hit:
    """A configured command: what it does and where it was written."""

    action: Action
    keyword: str
    responder: Responder | None = None


@dataclass(frozen=True)
class _Found:
    start: int
    end: int
    hit: _Hit


_RESPONDER_ACTIONS = {None: Action.RESPONDER, "opt_in": Action.OPT_IN, "opt_out": Action.OPT_OUT}
_TOPIC_ACTIONS = {Action.OPT_OUT: Action.TOPIC_OPT_OUT, Action.OPT_IN: Action.TOPIC_OPT_IN}


class _Scope:
    """The keyword tables of one scope, compiled for lookups."""

    def __init__(self, rules: Rules, config: Config) -> None:
        self.rules = rules
        self.config = config
        self.commands: dict[str, _Hit] = {}
        defaults = (("opt_out", Action.OPT_OUT), ("opt_in", Action.OPT_IN), ("help", Action.HELP))
        for kind, action in defaults:
            for keyword in getattr(rules, kind).keywords:
                self.commands.setdefault(keyword.key, _Hit(action, keyword.text))
        for responder in rules.responders.values():
            action = _RESPONDER_ACTIONS[responder.action]
            for keyword in responder.keywords:
                self.commands.setdefault(keyword.key, _Hit(action, keyword.text, responder))
        all_keywords = [k.text for kind, _ in defaults for k in getattr(rules, kind).keywords]
        all_keywords += [k.text for r in rules.responders.values() for k in r.keywords]
        self.longest_command = max(len(words(k)) for k in all_keywords)
        self.longest_command_key = max(len(key) for key in self.commands)
        self.topics: dict[str, str] = {}
        for topic in config.topics.values():
            for phrase in topic.phrases:
                self.topics.setdefault(phrase.key, topic.id)
                self.topics.setdefault(phrase.key + "s", topic.id)  # NEW ARRIVALS
        self.longest_topic = max(
            (len(words(p.text)) for t in config.topics.values() for p in t.phrases), default=0
        )
        # Only the compliance opt-out words are checked for misspellings: the set
        # is small and fixed, whatever the number of responders.
        stops = {k.key for k in rules.opt_out.keywords}
        self.misspellable = tuple(sorted(k for k in stops if len(k) >= 4))
        self.elongated = re.compile(
            "|".join("".join(f"{re.escape(c)}+" for c in k) for k in sorted(stops) if len(k) >= 3)
        )

    # -- the steps ---------------------------------------------------------------------

    def match(self, text: str) -> Intent:
        text = _without_signature(text)
        said = _join_letter_runs(words(text))
        if not said:
            return NO_INTENT
        exact = self.commands.get("".join(said))
        if exact is not None:
            return self.intent(exact.action, exact, exact=True)
        found = self.find(said)
        if any(f.hit.action is Action.OPT_OUT and self.negated(said, f.start) for f in found):
            return _REVIEW
        return (
            self.topic_command(said, found)
            or self.fused_topic_command(said)
            or self.command_with_company(said, found)
            or self.opt_out_clause(text)
            or self.plain_language(text, said)
            or self.maybe_revocation(said)
            or NO_INTENT
        )

    def negated(self, said: Sequence[str], start: int) -> bool:
        """ "don't stop", "no, do not cancel": an imperative negation opening the message.

        "Can't" and "won't" negate an ability, not the request, and in the
        middle of a sentence ("the light won't stop blinking") a stop word is
        just a verb: the later steps leave those alone.
        """
        before = " ".join(said[max(0, start - 4) : start])
        found = _IMPERATIVE_NEGATION.search(before)
        if found is None:
            return False
        opening = said[: start - len(before[found.start() :].split())]
        return set(opening) <= phrases.POLITE | _BEFORE_NEGATION

    def find(self, said: Sequence[str]) -> list[_Found]:
        """Every configured command in the text, longest first at each position."""
        found: list[_Found] = []
        i = 0
        while i < len(said):
            for n in range(min(self.longest_command, len(said) - i), 0, -1):
                hit = self.commands.get("".join(said[i : i + n]))
                if hit is not None and not _idiom(said, i, n):
                    found.append(_Found(i, i + n, hit))
                    i += n
                    break
            else:
                i += 1
        return found

    def topic_command(self, said: Sequence[str], found: list[_Found]) -> Intent | None:
        """Commands with topics: "STOP PRICE DROP", "stop price drop, start new arrivals".

        The text is cut at each command; each piece is a command and what it
        names. A stop word naming no topic (or "all") stops everything, and
        an opt-out wins over an opt-in.
        """
        if not found or not self.topics:
            return None
        if not set(said[: found[0].start]) <= phrases.POLITE | phrases.OPT_OUT_LEAD:
            return None
        pieces = []
        for index, command in enumerate(found):
            end = found[index + 1].start if index + 1 < len(found) else len(said)
            pieces.append((command.hit, *self.parse_topics(said[command.end : end])))
        if not any(topics for _hit, topics, _left, _all in pieces):
            return None
        stops = [piece for piece in pieces if piece[0].action is Action.OPT_OUT]
        for hit, topics, _leftover, everything in stops:
            if not topics or everything:
                return self.intent(Action.OPT_OUT, hit)
        review = any(not set(left) <= phrases.POLITE for _hit, _topics, left, _all in pieces)
        for action in (Action.OPT_OUT, Action.OPT_IN):
            chosen = [piece for piece in pieces if piece[0].action is action and piece[1]]
            if chosen:
                topics = tuple(dict.fromkeys(t for piece in chosen for t in piece[1]))
                return self.intent(
                    _TOPIC_ACTIONS[action], chosen[0][0], topics=topics, needs_review=review
                )
        helps = [piece for piece in pieces if piece[0].action is Action.HELP]
        return self.intent(Action.HELP, helps[0][0]) if helps else None

    def fused_topic_command(self, said: Sequence[str]) -> Intent | None:
        """ "STOPPRICEDROP": a command and a topic written as one word (lookups only)."""
        whole = "".join(said)
        for cut in range(1, min(len(whole), self.longest_command_key)):
            hit = self.commands.get(whole[:cut])
            topic = self.topics.get(whole[cut:]) if hit is not None else None
            if hit is not None and topic is not None and hit.action in _TOPIC_ACTIONS:
                return self.intent(_TOPIC_ACTIONS[hit.action], hit, topics=(topic,))
        return None

    def parse_topics(self, rest: Sequence[str]) -> tuple[tuple[str, ...], list[str], bool]:
        """The topics named in ``rest``, in order; the words neither topic nor filler; and
        whether "all", "everything" ... follows a topic ("STOP PRICE DROP and all")."""
        topics: list[str] = []
        leftover: list[str] = []
        everything = False
        i = 0
        while i < len(rest):
            for n in range(min(self.longest_topic, len(rest) - i), 0, -1):
                topic = self.topics.get("".join(rest[i : i + n]))
                if topic is not None:
                    if topic not in topics:
                        topics.append(topic)
                    i += n
                    break
            else:
                if topics and rest[i] in phrases.EVERYTHING:
                    everything = True
                elif rest[i] not in phrases.TOPIC_FILLER:
                    leftover.append(rest[i])
                i += 1
        return tuple(topics), leftover, everything

    def command_with_company(self, said: Sequence[str], found: list[_Found]) -> Intent | None:
        """Commands with nothing around them but courtesy and objects; opt-out wins."""
        if not found:
            return None
        covered = {i for f in found for i in range(f.start, f.end)}
        others = [word for i, word in enumerate(said) if i not in covered]
        stops = [f for f in found if f.hit.action is Action.OPT_OUT]
        if stops:
            before = {said[i] for i in range(stops[0].start) if i not in covered}
            after = {said[i] for i in range(stops[0].end, len(said)) if i not in covered}
            lead, tail = (
                phrases.OPT_OUT_LEAD | phrases.POLITE,
                phrases.OPT_OUT_OBJECT | phrases.POLITE,
            )
            if before <= lead and after <= tail:
                return self.intent(Action.OPT_OUT, stops[0].hit)
            return None
        by_action = {f.hit.action: f.hit for f in reversed(found)}
        if Action.OPT_IN in by_action and set(others) <= phrases.POLITE | phrases.OPT_IN_AFTER:
            return self.intent(Action.OPT_IN, by_action[Action.OPT_IN])
        if Action.HELP in by_action and set(others) <= phrases.POLITE | phrases.HELP_AROUND:
            return self.intent(Action.HELP, by_action[Action.HELP])
        if Action.RESPONDER in by_action and set(others) <= phrases.POLITE:
            return self.intent(Action.RESPONDER, by_action[Action.RESPONDER])
        return None

    def opt_out_clause(self, text: str) -> Intent | None:
        """A clause of its own that opts out: "Wrong number. STOP", "Not interested, stop"."""
        clauses = [words(part) for part in _CLAUSES.split(text)]
        if len(clauses) < 2:
            return None
        for clause in clauses:
            if not clause:
                continue
            hit = self.commands.get("".join(clause))
            if hit is not None and hit.action is Action.OPT_OUT:
                return self.intent(Action.OPT_OUT, hit)
            found = self.find(clause)
            if any(f.hit.action is Action.OPT_OUT and self.negated(clause, f.start) for f in found):
                continue
            intent = self.command_with_company(clause, found)
            if intent is not None and intent.action is Action.OPT_OUT:
                return intent
        return None

    def plain_language(self, text: str, said: Sequence[str]) -> Intent | None:
        sentence = " ".join(said)
        if any(pattern.search(sentence) for pattern in phrases.OPT_OUT_PHRASES):
            return self.intent(Action.OPT_OUT, None)
        if phrases.OPT_OUT_ANYWHERE.search(sentence):
            asked = text.rstrip().endswith("?") or said[0] in phrases.QUESTION_WORDS
            return _REVIEW if asked else self.intent(Action.OPT_OUT, None)
        if phrases.OPT_IN_PHRASES.match(sentence):
            return self.intent(Action.OPT_IN, None)
        return None

    def maybe_revocation(self, said: Sequence[str]) -> Intent | None:
        if phrases.REVIEW_PHRASES.search(" ".join(said)):
            return _REVIEW
        meaningful = [word for word in said if word not in phrases.POLITE]
        if len(meaningful) <= 3 and any(self.misspelled(word) for word in meaningful):
            return _REVIEW
        first = said[0]
        if first in phrases.REVIEW_FIRST_WORDS and len(said) <= 8 and not _idiom(said, 0, 1):
            return _REVIEW
        return None

    def misspelled(self, word: str) -> bool:
        """A near miss of an opt-out keyword: "stopp", "sotp", "stp", "unsubscibe"."""
        if word in phrases.NOT_MISSPELLINGS or word in self.commands:
            return False
        if self.elongated.fullmatch(word):
            return True
        return any(
            phrases.damerau_levenshtein_at_most_one(word, stop)
            or (len(stop) >= 8 and phrases.within_two_edits(word, stop))
            for stop in self.misspellable
            if len(word) >= 3
        )

    # -- building the answer -------------------------------------------------------------

    def intent(
        self,
        action: Action,
        hit: _Hit | None,
        *,
        topics: tuple[str, ...] = (),
        exact: bool = False,
        needs_review: bool = False,
    ) -> Intent:
        responder = hit.responder if hit else None
        if responder is not None and responder.topic and not topics:
            topics = (responder.topic,)
            action = _TOPIC_ACTIONS.get(action, action)
        if action is Action.TOPIC_OPT_OUT and self.config.organization.topic_opt_out_revokes_all:
            # The FCC "revoke all" rule: stopping one topic stops everything.
            action, topics = Action.OPT_OUT, ()
        return Intent(
            action=action,
            topic=topics[0] if topics else None,
            topics=topics,
            responder=responder.id if responder else None,
            reply=self.reply(action, topics, responder),
            needs_review=needs_review,
            keyword=hit.keyword if hit else None,
            exact=exact,
        )

    def reply(
        self, action: Action, topics: tuple[str, ...], responder: Responder | None
    ) -> str | None:
        rules = self.rules
        values = {"brand": rules.brand}
        if topics:
            named = [self.config.topics[topic] for topic in topics]
            values["topic"] = " and ".join(topic.name for topic in named)
            values["keyword"] = named[0].phrases[0].text
        if responder is not None and (responder.topic or not topics):
            return render(responder.reply, values)
        templates = {
            Action.OPT_OUT: rules.opt_out.reply,
            Action.OPT_IN: rules.opt_in.reply,
            Action.HELP: rules.help.reply,
            Action.TOPIC_OPT_OUT: rules.topic_replies.opt_out,
            Action.TOPIC_OPT_IN: rules.topic_replies.opt_in,
        }
        template = templates.get(action)
        return render(template, values) if template else None

    def topic_opt_in_while_opted_out(self, topics: tuple[str, ...]) -> str:
        """The answer to START <topic> from someone opted out of everything."""
        names = " and ".join(self.config.topics[topic].name for topic in topics)
        first = self.config.topics[topics[0]].phrases[0].text
        return render(
            self.rules.topic_replies.opt_in_while_opted_out,
            {"brand": self.rules.brand, "topic": names, "keyword": first},
        )


_REVIEW = Intent(Action.NONE, needs_review=True)

#: "don't", "do not", "never", maybe with one word between it and the stop word.
_IMPERATIVE_NEGATION = re.compile(r"(?:^| )(?:dont|do not|never)(?: \w+)?$")
#: What may open a message before "don't stop": "no, don't stop", "I said don't stop".
_BEFORE_NEGATION = frozenset(
    {"no", "yes", "ok", "okay", "i", "said", "just", "please", "so", "but"}
)

#: Where a message splits into clauses: sentence ends, commas, semicolons, new lines.
_CLAUSES = re.compile(r"[.!?,;:\n\u2026]+")
#: A signature or a phone's footer: it and everything after it are not the message.
_SIGNATURE = re.compile(
    r"^\s*(?:--|\u2014|__|sent from my\b|get outlook for\b|sent via\b)",
    re.IGNORECASE | re.MULTILINE,
)


def _without_signature(text: str) -> str:
    """ "STOP\nSent from my iPhone" is STOP."""
    found = _SIGNATURE.search(text)
    if found is None or not text[: found.start()].strip():
        return text
    return text[: found.start()]


def _join_letter_runs(said: Sequence[str]) -> tuple[str, ...]:
    """ "S T O P price drop": three or more single letters in a row are one word."""
    joined: list[str] = []
    run: list[str] = []
    for word in [*said, ""]:
        if len(word) == 1 and word.isalpha():
            run.append(word)
            continue
        joined.extend(["".join(run)] if len(run) >= 3 else run)
        run = []
        if word:
            joined.append(word)
    return tuple(joined)


#: Words after a keyword that make it an ordinary word: "stop by", "end of the month".
_IDIOMS = {"stop": phrases.STOP_IDIOMS, "end": frozenset({"of", "up", "date", "time", "game"})}


def _idiom(said: Sequence[str], start: int, length: int) -> bool:
    word = "".join(said[start : start + length])
    following = said[start + length] if start + length < len(said) else None
    return following is not None and following in _IDIOMS.get(word, ())


class Matcher:
    """Matches texts against a loaded config; build one per config and reuse it."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self._defaults = _Scope(config.defaults, config)
        self._overrides = {id(o): _Scope(o.rules, config) for o in config.overrides}

    def _scope(self, line: str | None, group: str | None) -> _Scope:
        override = self.config.override_for(line, group)
        return self._overrides[id(override)] if override is not None else self._defaults

    def match(self, text: str, line: str | None = None, group: str | None = None) -> Intent:
        """The intent of ``text`` sent to ``line`` (of line group ``group``)."""
        return self._scope(line, group).match(text)

    def topic_opt_in_while_opted_out(
        self, topics: tuple[str, ...], line: str | None = None, group: str | None = None
    ) -> str:
        return self._scope(line, group).topic_opt_in_while_opted_out(topics)
