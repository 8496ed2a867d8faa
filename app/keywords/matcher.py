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

from app.keywords import lookalikes, phrases, signs
from app.keywords.intent import NO_INTENT, Action, Intent
from app.keywords.model import Config, Responder, Rules, render
from app.keywords.phrasebook import tokens
from app.keywords.text import words, words_as_written


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
        self.phrasebook = config.languages.phrasebook
        #: Courtesy in every language read: "STOP por favor", "stop na po" are STOP please.
        self.polite = phrases.POLITE | self.phrasebook.courtesy_words
        lookalikes.table()  # built now, so that no text waits for it
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
        #: Every beginning of a topic's key: a word that is none starts no topic.
        self.topic_beginnings = frozenset(key[:n] for key in self.topics for n in range(1, 40))
        # Only the compliance opt-out words are checked for misspellings: the set
        # is small and fixed, whatever the number of responders.
        stops = {k.key for k in rules.opt_out.keywords}
        self.misspellable = tuple(sorted(k for k in stops if len(k) >= 4))
        self.elongated = re.compile(
            "|".join("".join(f"{re.escape(c)}+" for c in k) for k in sorted(stops) if len(k) >= 3)
        )

    # -- the steps ---------------------------------------------------------------------

    def match(self, text: str) -> Intent:
        intent = self._match(text)
        if intent.action is Action.OPT_IN and not intent.exact:
            # Consent is made only by the keyword itself, alone ("START", "Yes!", "JOIN"):
            # "yes please" may answer anything, and Twilio's own filter re-subscribes on
            # the exact word only. Looser texts change nothing (docs/keywords.md).
            return NO_INTENT
        return intent

    def _match(self, text: str) -> Intent:
        text = _without_signature(text)
        said = _join_letter_runs(words(text))
        if not said:
            return _REVIEW if signs.has_stop_sign(text) else NO_INTENT
        exact = self.commands.get("".join(said))
        if exact is not None:
            return self.intent(exact.action, exact, exact=True)
        found = self.find(said)
        if any(f.hit.action is Action.OPT_OUT and self.negated(said, f.start) for f in found):
            return _REVIEW
        decided = (
            self.topic_command(said, found)
            or self.fused_topic_command(said)
            or self.command_with_company(said, found, text.rstrip().endswith("?"))
            or self.opt_out_clause(text)
        )
        if decided is not None and decided.action in _LESS_THAN_OPT_OUT:
            # "START NEW ARRIVAL but no more texts at all": an opt-out said in words wins.
            stop = self.plain_language(text, said) or self.in_languages(text, said)
            if stop is not None and stop.action in (Action.OPT_OUT, Action.TOPIC_OPT_OUT):
                return stop
        if decided is not None:
            return decided
        # From here on an opt-out found by any step wins over a review found by another:
        # "STOP who is this", "Stop the madness, no quiero más mensajes".
        # (Written out, not looped over: this is the path of most texts.)
        intent = self.plain_language(text, said)
        if intent is not None and intent is not _REVIEW:
            return intent
        review = intent is _REVIEW
        intent = self.per_se_opening(text, said, found)
        if intent is not None and intent is not _REVIEW:
            return intent
        review = review or intent is _REVIEW
        intent = self.in_languages(text, said)
        if intent is not None and intent is not _REVIEW:
            return intent
        if review or intent is _REVIEW:
            return _REVIEW
        return self.maybe_revocation(text, said) or NO_INTENT

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
        return set(opening) <= self.polite | _BEFORE_NEGATION

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
        if not set(said[: found[0].start]) <= self.polite | phrases.OPT_OUT_LEAD:
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
        # "Stop sending price drop texts" is plain; "stop texting me about price drops"
        # says more than the topic (about what?): a person looks at it.
        review = any(
            not set(left) <= self.polite | _AROUND_TOPIC[hit.action]
            for hit, _topics, left, _all in pieces
        )
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

    def command_with_company(
        self, said: Sequence[str], found: list[_Found], asked: bool = False
    ) -> Intent | None:
        """Commands with nothing around them but courtesy and objects; opt-out wins.

        Courtesy is any language's ("STOP 谢谢", "Stop por favor"). A stop asked
        about ("Can I unsubscribe?", ``asked``: the text ends with "?") is reviewed:
        "can you stop" asks us to, "can I unsubscribe" asks whether one may.
        """
        if not found:
            return None
        covered = {i for f in found for i in range(f.start, f.end)}
        others = [word for i, word in enumerate(said) if i not in covered]
        stops = [f for f in found if f.hit.action is Action.OPT_OUT]
        if stops:
            before = [said[i] for i in range(stops[0].start) if i not in covered]
            after = [said[i] for i in range(stops[0].end, len(said)) if i not in covered]
            lead, tail = (
                phrases.OPT_OUT_LEAD | self.polite,
                phrases.OPT_OUT_OBJECT | self.polite,
            )
            if self.courteous(before, lead) and self.courteous(after, tail):
                if (
                    asked
                    and before[:1] in (["can"], ["could"], ["may"])
                    and before[1:2]
                    in (
                        ["i"],
                        ["we"],
                    )
                ):
                    return _REVIEW
                return self.intent(Action.OPT_OUT, stops[0].hit)
            return None
        by_action = {f.hit.action: f.hit for f in reversed(found)}
        if Action.OPT_IN in by_action and set(others) <= self.polite | phrases.OPT_IN_AFTER:
            return self.intent(Action.OPT_IN, by_action[Action.OPT_IN])
        if Action.HELP in by_action and set(others) <= self.polite | phrases.HELP_AROUND:
            return self.intent(Action.HELP, by_action[Action.HELP])
        if Action.RESPONDER in by_action and set(others) <= self.polite:
            return self.intent(Action.RESPONDER, by_action[Action.RESPONDER])
        return None

    def courteous(self, said: Sequence[str], allowed: frozenset[str]) -> bool:
        """Whether ``said`` is only ``allowed`` words, or else courtesy in some language."""
        left = [word for word in said if word not in allowed]
        return not left or self.phrasebook.all_courtesy(tokens(left))

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
        """English requests (phrases.py); the topics they name, if any: "no more new
        arrival texts", "I don't want price drop texts" are that topic's opt-out."""
        without, named = self.without_topics(said)
        sentence = " ".join(without)
        for pattern in phrases.OPT_OUT_PHRASES:
            found = pattern.search(sentence)
            if found is not None:
                start = sentence[: found.start()].count(" ")
                end = start + found.group().count(" ") + 1
                if _NEGATION_BEFORE.search(sentence[: found.start()]):
                    return _REVIEW  # "Don't opt me out" (rule 2)
                return self.opt_out(named, start, end, None, everything=without[end:])
        sentence = " ".join(said)
        anywhere = phrases.OPT_OUT_ANYWHERE.search(sentence)
        if anywhere is not None:
            asked = text.rstrip().endswith("?") or said[0] in phrases.QUESTION_WORDS
            after = sentence[anywhere.end() :].split()
            if asked and _about_something_else(after):
                return None  # "Can I opt out of the extended warranty?"
            return _REVIEW if asked else self.intent(Action.OPT_OUT, None)
        if phrases.OPT_IN_PHRASES.match(sentence):
            return self.intent(Action.OPT_IN, None)
        return None

    def per_se_opening(self, text: str, said: Sequence[str], found: list[_Found]) -> Intent | None:
        """A per-se word opening a longer text (47 CFR 64.1200(a)(10)): "STOP, you people
        are relentless", "Revoke my consent", "STOP I bought one already".

        REVOKE, UNSUBSCRIBE and OPT OUT open no ordinary sentence: an opt-out. STOP
        and QUIT are one when said to us ("STOP you people", "quit it already") or
        written in capitals in a text that is not ("STOP I bought one"); END and
        CANCEL only when the texts are what ends ("cancel texts to this number");
        any other opening is read by a person ("Stop the madness"). Idioms ("stop
        by", "end of") are no command at all (see ``find``).
        """
        lead = 0
        while lead < len(said) and said[lead] in self.polite:
            lead += 1
        opening = found[0] if found else None
        if opening is None or opening.start != lead or opening.hit.action is not Action.OPT_OUT:
            return None
        word = "".join(said[opening.start : opening.end])
        if word not in phrases.PER_SE_OPENING or opening.end >= len(said):
            return None
        following = said[opening.end]
        if word in phrases.PER_SE_ALWAYS:
            return self.intent(Action.OPT_OUT, opening.hit)
        if word in phrases.PER_SE_ORDINARY:
            if following in phrases.TEXTS_OBJECT:
                return self.intent(Action.OPT_OUT, opening.hit)
            return None
        if following in phrases.ADDRESSED or _shouted(text, said[opening.start]):
            return self.intent(Action.OPT_OUT, opening.hit)
        return _REVIEW

    def in_languages(self, text: str, said: Sequence[str]) -> Intent | None:
        """The phrases of every language read (languages/*.yaml), English ones included."""
        without, named = self.without_topics(said)
        said_tokens = tokens(without)
        as_written = None
        if (
            not text.isascii()
            and not named
            and not self.phrasebook.as_written_starts.isdisjoint(said_tokens)
        ):
            as_written = tokens(_join_letter_runs(words_as_written(text)))
        reading = self.phrasebook.read(said_tokens, as_written)
        if reading is None:
            return None
        if reading.action == "review":
            return _REVIEW
        aligned = all(word.isascii() for word in without)
        return self.opt_out(
            named if aligned else [],
            reading.start,
            reading.end,
            None,
            reading.language,
            everything=without[reading.end :] if aligned else (),
        )

    def without_topics(self, said: Sequence[str]) -> tuple[list[str], list[tuple[int, str]]]:
        """``said`` without the topic phrases in it, and where each stood in what is left."""
        if not self.topics:
            return list(said), []
        if not any(word in self.topic_beginnings for word in said):
            return list(said), []  # nearly every text: no topic in it
        left: list[str] = []
        named: list[tuple[int, str]] = []
        i = 0
        while i < len(said):
            if said[i] in self.topic_beginnings:
                for n in range(min(self.longest_topic, len(said) - i), 0, -1):
                    topic = self.topics.get("".join(said[i : i + n]))
                    if topic is not None:
                        named.append((len(left), topic))
                        i += n
                        break
                else:
                    topic = None
                if topic is not None:
                    continue
            if not (named and named[-1][0] == len(left) and said[i] in _JOINING):
                left.append(said[i])  # "price drop or new arrival texts": no "or"
            i += 1
        return left, named

    def opt_out(
        self,
        named: list[tuple[int, str]],
        start: int,
        end: int,
        hit: _Hit | None,
        language: str | None = None,
        everything: Sequence[str] = (),
    ) -> Intent:
        """An opt-out found at words start..end: of the topics named inside it or right
        after it ("no more new arrival texts", "no more texts about price drops"), or of
        everything, also when "any other", "all" ... follows (``everything``: the words
        after the request)."""
        topics = tuple(dict.fromkeys(t for at, t in named if start < at <= end + 2))
        if topics and not set(everything) & phrases.EVERYTHING:
            return self.intent(Action.TOPIC_OPT_OUT, hit, topics=topics)
        return self.intent(Action.OPT_OUT, hit, language=language)

    def maybe_revocation(self, text: str, said: Sequence[str]) -> Intent | None:
        if phrases.REVIEW_PHRASES.search(" ".join(said)):
            return _REVIEW
        meant = set(said) - self.polite
        if signs.has_stop_sign(text) and (
            (meant and meant <= phrases.OPT_OUT_OBJECT) or set(said) <= _URGING
        ):
            return _REVIEW  # "🛑 texting me", "🛑 please"; not "Thanks! ✋" (a wave)
        if said[0] == "how" and any(
            f.hit.action is Action.OPT_OUT
            and "".join(said[f.start : f.end]) in _ASKED_ABOUT
            and not _of_something_else(said[f.end :])
            for f in self.find(said)
        ):
            return _REVIEW  # "How can I stop these texts?"
        meaningful = [word for word in said if word not in self.polite]
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
        language: str | None = None,
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
            reply=self.reply(action, topics, responder, language),
            needs_review=needs_review,
            keyword=hit.keyword if hit else None,
            exact=exact,
            language=language,
        )

    def reply(
        self,
        action: Action,
        topics: tuple[str, ...],
        responder: Responder | None,
        language: str | None = None,
    ) -> str | None:
        rules = self.rules
        values = {"brand": rules.brand}
        translated = self.config.languages.opt_out_replies.get(language or "")
        if action is Action.OPT_OUT and translated is not None:
            # The confirmation in the language the contact wrote in (keywords.yaml).
            return render(translated, values)
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

#: Words around a topic that need no review, by the command's action.
_AROUND_TOPIC = {
    Action.OPT_OUT: phrases.OPT_OUT_OBJECT,
    Action.OPT_IN: phrases.OPT_IN_AFTER,
    Action.HELP: frozenset[str](),
}
#: Between two topics: "price drop or new arrival texts".
#: What a command's intent may be overruled by, when words ask to stop.
_LESS_THAN_OPT_OUT = frozenset({Action.TOPIC_OPT_IN, Action.OPT_IN, Action.HELP, Action.RESPONDER})
_JOINING = frozenset({"and", "or", "plus", "nor", "n"})
#: Courtesy that urges, unlike thanks: "🛑 please" may mean stop, "Thanks! ✋" waves.
_URGING = frozenset("please pls plz plez plse now asap immediately already".split())
#: Opt-out words a "how ..." question asks about: "How do I make these texts stop?".
_ASKED_ABOUT = frozenset({"stop", "stopall", "quit", "unsubscribe", "unsub", "optout"})
#: A negation right before a plain request: "Don't opt me out".
_NEGATION_BEFORE = re.compile(r"(?:^| )(?:dont|do not|never|please dont)(?: \w+)? ?$")


def _about_something_else(after: Sequence[str]) -> bool:
    """After "opt out" / "unsubscribe" in a question, words about another thing: "... of
    the extended warranty", "the opt-out deadline"; not "... of these texts"."""
    if not after:
        return False
    if after[0] in ("of", "from", "for"):
        return _of_something_else(after)
    return after[0] not in phrases.OPT_OUT_OBJECT and after[0] not in phrases.POLITE


def _of_something_else(after: Sequence[str]) -> bool:
    """ "... of the paint protection package", not "... of these texts"."""
    if not after or after[0] not in ("of", "from", "for"):
        return False
    named = [word for word in after[1:] if word not in ("the", "your", "my", "this", "a")]
    return bool(named) and named[0] not in phrases.OPT_OUT_OBJECT


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


def _shouted(text: str, word: str) -> bool:
    """Whether ``word`` opens ``text`` in capitals while the rest is not: "STOP I ..."."""
    stripped = text.lstrip(" \t\r\n\"'*(\u201c\u2018")
    opening = stripped[: len(word)]
    rest = stripped[len(word) :]
    return opening.isupper() and opening.casefold() == word and any(c.islower() for c in rest)


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
