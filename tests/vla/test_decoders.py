import pytest
from hypothesis import given
from hypothesis import strategies as st

from vla.decoders import DecoderSpec, parse_decoder_spec, valid_forms


@pytest.mark.parametrize(("text", "family", "ee", "steps", "solver", "head"), [
    ("ar", "ar", False, None, None, "ar"),
    ("jacobi", "jacobi", False, None, None, "ar"),
    ("jacobi+ee", "jacobi", True, None, None, "ar"),
    ("cjacobi+ee", "cjacobi", True, None, None, "ar"),
    ("cjacobi", "cjacobi", False, None, None, "ar"),
    ("diffusion@8", "diffusion", False, 8, None, "diffusion"),
    ("flow@10", "flow", False, 10, "euler", "flow"),
    ("flow@10:heun", "flow", False, 10, "heun", "flow"),
    (" OFT ", "oft", False, None, None, "oft"),
])
def test_valid_specs(text, family, ee, steps, solver, head):
    spec = parse_decoder_spec(text)
    assert (spec.family, spec.early_exit, spec.steps, spec.solver) == (family, ee, steps, solver)
    assert spec.head == head
    assert spec.distilled == (family == "cjacobi")
    assert parse_decoder_spec(str(spec)) == spec


def test_canonical_form():
    assert str(parse_decoder_spec("flow@10:euler")) == "flow@10"
    assert str(parse_decoder_spec("flow@4:heun")) == "flow@4:heun"
    assert str(parse_decoder_spec("cjacobi+ee")) == "cjacobi+ee"


@pytest.mark.parametrize("text", [
    "", "arr", "diffusion", "diffusion@0", "diffusion@x", "flow@-1", "flow@5:rk4", "ar+ee",
    "oft@3", "ar:heun", "jacobi@4", "diffusion+ee@8", "flow@@3", "ar ar",
])
def test_invalid_specs_name_valid_forms(text):
    with pytest.raises(ValueError, match="valid forms: ar, jacobi") as info:
        parse_decoder_spec(text)
    assert "\n" not in str(info.value)


def test_suggests_close_match():
    with pytest.raises(ValueError, match="did you mean 'jacobi'"):
        parse_decoder_spec("jacobbi")


def test_dataclass_validates_fields():
    with pytest.raises(ValueError, match="steps"):
        DecoderSpec("flow")
    with pytest.raises(ValueError, match="family"):
        DecoderSpec("beam")


@given(st.text(max_size=12))
def test_parser_never_crashes_otherwise(text):
    try:
        spec = parse_decoder_spec(text)
    except ValueError:
        return
    assert str(spec) in {f.replace("T", str(spec.steps)).replace("K", str(spec.steps))
                         for f in valid_forms()}


def test_non_ascii_digits_rejected_with_message():
    with pytest.raises(ValueError, match="positive integer"):
        parse_decoder_spec("flow@³")
