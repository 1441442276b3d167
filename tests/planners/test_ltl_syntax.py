"""The LTLf parser: precedence, associativity, tokenization and error reporting."""

from __future__ import annotations

import pytest
from hypothesis import given
from ltl_random import formulas

from planners.ltl import LTLf, LTLSyntaxError
from planners.ltl_syntax import parse, to_text


@pytest.mark.parametrize(("loose", "explicit"), [
    ("a | b & c", "a | (b & c)"),
    ("a & b | c", "(a & b) | c"),
    ("a & b U c", "a & (b U c)"),
    ("a U b & c", "(a U b) & c"),
    ("a -> b -> c", "a -> (b -> c)"),
    ("a <-> b -> c", "a <-> (b -> c)"),
    ("a -> b <-> c", "(a -> b) <-> c"),
    ("a <-> b <-> c", "(a <-> b) <-> c"),
    ("a -> b | c", "a -> (b | c)"),
    ("a | b | c", "(a | b) | c"),
    ("a & b & c", "(a & b) & c"),
    ("a U b R c", "a U (b R c)"),
    ("a W b U c", "a W (b U c)"),
    ("F a U b", "(F a) U b"),
    ("!a & b", "(!a) & b"),
    ("! a U b", "(!a) U b"),
    ("X a U WX b", "(X a) U (WX b)"),
    ("G a -> F b", "(G a) -> (F b)"),
    ("G !X a", "G(!(X(a)))"),
    ("!!a", "!(!a)"),
])
def test_precedence_and_associativity(loose, explicit):
    assert parse(loose) is parse(explicit)


@pytest.mark.parametrize(("compact", "spaced"), [
    ("GFa", "G F a"),
    ("FGa_1", "F G a_1"),
    ("aUb", "a U b"),
    ("aRb", "a R b"),
    ("WXa", "WX a"),
    ("XXa", "X X a"),
    ("WXWXa", "WX WX a"),
    ("XWXa", "X WX a"),
    ("G(a->Xb)", "G (a -> X b)"),
    ("Ftrue", "F true"),
])
def test_compact_words_split_where_the_case_changes(compact, spaced):
    assert parse(compact) is parse(spaced)


def test_weak_until_followed_by_next_needs_spaces():
    assert parse("a W X b") is parse("a W (X b)")
    with pytest.raises(LTLSyntaxError):  # "aWXb" reads a, WX, b: two operands in a row
        LTLf("aWXb")


def test_atoms_and_constants():
    spec = LTLf("G(!server_room) & F(kitchen & F lab) | _x1 | true | false")
    assert spec.atoms == frozenset({"server_room", "kitchen", "lab", "_x1"})
    assert LTLf("true").atoms == frozenset()
    assert str(spec) == spec.text and repr(spec).startswith("LTLf(")


@pytest.mark.parametrize(("text", "position", "expected"), [
    ("", 0, "an atom"),
    ("   ", 3, "an atom"),
    ("a &", 3, "an atom"),
    ("(a", 2, "')'"),
    ("a)", 1, "end of input"),
    ("a b", 2, "end of input"),
    ("()", 1, "an atom"),
    ("!", 1, "an atom"),
    ("a U", 3, "an atom"),
    ("a -> -> b", 5, "an atom"),
    ("Kitchen", 0, "lowercase atom"),
    ("True", 0, "lowercase atom"),
    ("X1", 1, "[a-z_]"),
    ("1a", 0, "[a-z_]"),
    ("a $ b", 2, "an atom, an operator or a parenthesis"),
    ("a && b", 3, "an atom"),
    ("a => b", 2, "an atom, an operator or a parenthesis"),
])
def test_syntax_errors_carry_position_expected_and_caret(text, position, expected):
    with pytest.raises(LTLSyntaxError) as info:
        LTLf(text)
    err = info.value
    assert isinstance(err, ValueError)
    assert err.position == position
    assert expected in err.expected
    formula_line, caret_line = str(err).splitlines()[-2:]
    assert formula_line == "  " + text
    assert caret_line == "  " + " " * position + "^"


def test_deep_nesting_parses():
    """The parser is iterative: nesting depth is not limited by Python's recursion limit."""
    assert LTLf("(" * 5000 + "a" + ")" * 5000) == LTLf("a")
    assert LTLf("(" * 50 + "a" + ")" * 50).atoms == {"a"}
    with pytest.raises(LTLSyntaxError) as info:
        LTLf("(" * 5000 + "a" + ")" * 4999)
    assert info.value.position == 10_000 and "')'" in info.value.expected


def test_non_string_is_a_type_error():
    with pytest.raises(TypeError, match="str"):
        LTLf(None)  # type: ignore[arg-type]


def test_interning_and_syntactic_equality():
    assert LTLf("a & b") == LTLf("(a)&(b)")
    assert LTLf("a & b") != LTLf("b & a")  # syntactic; see equivalent() for semantics
    assert len({LTLf("F a"), LTLf("F(a)"), LTLf("F  a")}) == 1


@given(formulas())
def test_to_text_round_trips(text):
    node = parse(text)
    assert parse(to_text(node)) is node
