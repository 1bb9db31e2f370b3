"""The tokenizer: Orch8's token set, with positions, escapes and exponents.

Words are ASCII `[A-Za-z_][A-Za-z0-9_.]*` (so a dotted path is one token);
`true false null in` are keywords. Numbers are decimal with an optional
fraction and exponent (a leading `-` is the unary operator). Strings use `'` or
`"` and understand the JSON escapes plus `\\'`; any other backslash is kept as
written, as Orch8 (which has no escapes) would read it.
"""

from __future__ import annotations

import math
from typing import Final

from attrs import frozen

from orch8.domain.expressions.errors import ExpressionError

KEYWORDS: Final = {"true": True, "false": False, "null": None}
OPERATORS: Final = ("==", "!=", ">=", "<=", "&&", "||", ">", "<", "!", "+", "-", "*", "/")
PUNCTUATION: Final = frozenset("()[],?:")
_BLANKS: Final = frozenset(" \t\n\r")
_ESCAPES: Final = {
    '"': '"',
    "'": "'",
    "\\": "\\",
    "/": "/",
    "b": "\b",
    "f": "\f",
    "n": "\n",
    "r": "\r",
    "t": "\t",
}
_HEX: Final = frozenset("0123456789abcdefABCDEF")


@frozen
class Token:
    """kind: `string`, `number`, `literal` (true/false/null), `word`, `in`, an
    operator or punctuation character itself, or `end`."""

    kind: str
    value: object
    position: int


def _is_word_start(char: str) -> bool:
    return char.isascii() and (char.isalpha() or char == "_")


def _is_word_char(char: str) -> bool:
    return char.isascii() and (char.isalnum() or char in "_.")


def tokenize(text: str, *, offset: int = 0, source: str | None = None) -> list[Token]:
    """Split `text` into tokens; positions are shifted by `offset` (into `source`)."""
    lexer = _Lexer(text, offset, text if source is None else source)
    return lexer.run()


class _Lexer:
    def __init__(self, text: str, offset: int, source: str) -> None:
        self.text = text
        self.offset = offset
        self.source = source
        self.i = 0
        self.tokens: list[Token] = []

    def fail(self, message: str, at: int) -> ExpressionError:
        return ExpressionError(message, position=at + self.offset, expr=self.source)

    def emit(self, kind: str, value: object, at: int) -> None:
        self.tokens.append(Token(kind, value, at + self.offset))

    def run(self) -> list[Token]:
        text = self.text
        while self.i < len(text):
            char = text[self.i]
            if char in _BLANKS:
                self.i += 1
            elif char in "'\"":
                self.string(char)
            elif char.isascii() and char.isdigit():
                self.number()
            elif _is_word_start(char):
                self.word()
            elif char in PUNCTUATION:
                self.emit(char, char, self.i)
                self.i += 1
            else:
                self.operator(char)
        self.emit("end", None, len(text))
        return self.tokens

    def operator(self, char: str) -> None:
        for op in OPERATORS:
            if self.text.startswith(op, self.i):
                self.emit(op, op, self.i)
                self.i += len(op)
                return
        shown = char if char.isprintable() else repr(char)
        raise self.fail(f"unexpected character '{shown}'", self.i)

    def word(self) -> None:
        start = self.i
        while self.i < len(self.text) and _is_word_char(self.text[self.i]):
            self.i += 1
        word = self.text[start : self.i]
        if word in KEYWORDS:
            self.emit("literal", KEYWORDS[word], start)
        elif word == "in":
            self.emit("in", word, start)
        else:
            self.emit("word", word, start)

    def number(self) -> None:
        text, start = self.text, self.i
        self.i = self._digits(start)
        if self.i < len(text) and text[self.i] == ".":
            self.i = self._digits(self.i + 1)
        if self.i < len(text) and text[self.i] in "eE":
            exponent = self.i + 1
            if exponent < len(text) and text[exponent] in "+-":
                exponent += 1
            if exponent < len(text) and text[exponent].isascii() and text[exponent].isdigit():
                self.i = self._digits(exponent)
        literal = text[start : self.i]
        value = float(literal)
        if not math.isfinite(value):
            raise self.fail(f"number {literal} is out of range", start)
        self.emit("number", value, start)

    def _digits(self, i: int) -> int:
        while i < len(self.text) and self.text[i].isascii() and self.text[i].isdigit():
            i += 1
        return i

    def string(self, quote: str) -> None:
        text, start = self.text, self.i
        self.i += 1
        chunks: list[str] = []
        while self.i < len(text):
            char = text[self.i]
            if char == quote:
                self.i += 1
                self.emit("string", "".join(chunks), start)
                return
            if char == "\\" and self.i + 1 < len(text):
                chunks.append(self.escape())
            else:
                chunks.append(char)
                self.i += 1
        raise self.fail("unterminated string", start)

    def escape(self) -> str:
        text, i = self.text, self.i
        code = text[i + 1]
        if code in _ESCAPES:
            self.i += 2
            return _ESCAPES[code]
        if code == "u" and self._hex4(i + 2):
            unit = int(text[i + 2 : i + 6], 16)
            self.i += 6
            if (
                0xD800 <= unit < 0xDC00
                and text.startswith("\\u", self.i)
                and self._hex4(self.i + 2)
            ):
                low = int(text[self.i + 2 : self.i + 6], 16)
                if 0xDC00 <= low < 0xE000:
                    self.i += 6
                    return chr(0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00))
            return chr(unit)
        # Not an escape we know: keep the backslash, as Orch8 would.
        self.i += 1
        return "\\"

    def _hex4(self, i: int) -> bool:
        return i + 4 <= len(self.text) and all(c in _HEX for c in self.text[i : i + 4])
