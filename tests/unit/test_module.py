"""Module: calling, parameter discovery, copies, LMs, in-memory state and batch."""

import asyncio
import contextvars
import threading

import pytest
from primitives_fakes import Counter, FakePredict, Inner, TwoStep, learned, teach

from plait.errors import StateError
from plait.primitives import BatchError, Example, Module, Parameter, Prediction

TWO_STEP_NAMES = ["first", "inner.predict", "steps[0]", "steps[1][0]", "pair[0]", "by_name['k']",
                  "by_name['nested']['deep']", "count"]


class Echo(Module):
    def forward(self, question: str) -> Prediction:
        return Prediction(answer=question.upper())


# --- calling -----------------------------------------------------------------------------
def test_call_runs_forward_and_missing_forward_is_explained():
    assert Echo()(question="hi").answer == "HI"
    with pytest.raises(NotImplementedError, match="Module has no forward"):
        Module()(question="hi")


async def test_acall_runs_forward_in_a_thread_with_the_callers_context():
    var = contextvars.ContextVar("var", default="unset")
    seen = {}

    class Probe(Module):
        def forward(self, x):
            seen["thread"] = threading.current_thread()
            seen["var"] = var.get()
            return Prediction(x=x)

    var.set("from caller")
    pred = await Probe().acall(x=1)
    assert pred.x == 1
    assert seen["var"] == "from caller"
    assert seen["thread"] is not threading.current_thread()


# --- discovery ---------------------------------------------------------------------------
def test_named_parameters_walks_attributes_containers_and_nested_modules():
    program = TwoStep()
    assert [name for name, _ in program.named_parameters()] == TWO_STEP_NAMES
    assert program.named_parameters()[0][1] is program.first
    assert program.named_parameters()[1][1] is program.inner.predict
    assert program.parameters() == [p for _, p in program.named_parameters()]


def test_named_predictors_are_the_parameters_with_a_signature():
    program = TwoStep()
    assert [name for name, _ in program.named_predictors()] == TWO_STEP_NAMES[:-1]
    assert all(isinstance(p, FakePredict) for p in program.predictors())


def test_a_parameter_program_is_named_self_and_a_leaf_is_not_walked():
    predict = FakePredict()
    predict.hidden = FakePredict("a -> b")      # a leaf: never looked inside
    assert predict.named_parameters() == [("self", predict)]


def test_a_non_leaf_parameter_module_is_walked():
    class Wrapper(Module, Parameter):
        def __init__(self):
            self.core = FakePredict()
        # state methods deliberately absent: only discovery is tested here

    wrapper = Wrapper()
    outer = Module()
    outer.wrap = wrapper
    assert outer.named_parameters() == [("wrap", wrapper), ("wrap.core", wrapper.core)]
    assert wrapper.named_parameters() == [("self", wrapper), ("core", wrapper.core)]
    with pytest.raises(NotImplementedError, match="Wrapper is a Parameter but does not define dump_state"):
        outer.dump_state()


def test_each_object_appears_once_and_cycles_terminate():
    shared = FakePredict()
    program = Module()
    program.a = shared
    program.b = [shared, shared]
    program.me = program                      # cycle through an attribute
    loop: list = []
    loop.append(loop)                         # cycle through a container
    program.loop = loop
    child = Module()
    child.parent = program                    # cycle through a sub-module
    child.own = FakePredict("c -> d")
    program.child = child
    assert program.named_parameters() == [("a", shared), ("child.own", child.own)]


def test_excluded_attributes_are_not_walked():
    program = Module()
    program.history = [FakePredict()]
    program.demos = [FakePredict()]
    program.callbacks = [FakePredict()]
    assert program.named_parameters() == []


def test_non_string_dict_keys_use_their_repr():
    program = Module()
    program.table = {1: FakePredict(), ("a", 2): FakePredict()}
    assert [name for name, _ in program.named_parameters()] == ["table[1]", "table[('a', 2)]"]


def test_named_sub_modules_lists_self_and_every_module():
    program = TwoStep()
    names = [name for name, _ in program.named_sub_modules()]
    assert names[:3] == ["self", "first", "inner"]
    assert "inner.predict" in names and "count" not in names   # Counter is not a Module
    assert [name for name, _ in program.named_sub_modules(type_=Inner)] == ["inner"]
    program.inner._compiled = True
    assert "inner.predict" not in [name for name, _ in program.named_sub_modules(skip_compiled=True)]


def test_map_named_predictors_replaces_predictors_where_they_live():
    program = TwoStep()
    program.pair = [program.pair[0]]            # tuples cannot be written to
    program.map_named_predictors(lambda p: FakePredict(p.signature + " (mapped)"))
    signatures = [p.signature for p in program.predictors()]
    assert all(s.endswith("(mapped)") for s in signatures) and len(signatures) == 7
    assert program.by_name["nested"]["deep"].signature == "d -> e (mapped)"
    with pytest.raises(TypeError, match="tuple"):
        TwoStep().map_named_predictors(lambda p: p)


# --- copies ------------------------------------------------------------------------------
def test_deepcopy_is_independent():
    program = TwoStep()
    teach(program, "orig")
    twin = program.deepcopy()
    assert learned(twin) == learned(program)
    teach(twin, "changed")
    twin.steps[1][0].demos.append(Example(question="more"))
    assert learned(twin) != learned(program)
    assert program.steps[1][0].instructions == "orig-steps[1][0]"
    assert twin.first is not program.first


def test_deepcopy_keeps_objects_that_define_deepcopy_as_themselves():
    class SharedLM:
        def __deepcopy__(self, memo):
            return self

    lm = SharedLM()
    program = TwoStep()
    program.set_lm(lm)
    assert program.deepcopy().first.lm is lm


def test_reset_copy_resets_every_parameter_of_the_copy_only():
    program = TwoStep()
    teach(program, "orig")
    fresh = program.reset_copy()
    assert all(p.demos == [] and p.instructions == "" for p in fresh.predictors())
    assert fresh.count.value == 0
    assert program.first.instructions == "orig-first"


# --- LMs and repr ------------------------------------------------------------------------
def test_set_lm_and_get_lm():
    program = TwoStep()
    lm = object()
    program.set_lm(lm)
    assert program.get_lm() is lm
    assert all(p.lm is lm for p in program.predictors())
    program.by_name["k"].lm = object()
    with pytest.raises(ValueError, match=r"different LMs \(first and by_name\['k'\] differ\)"):
        program.get_lm()
    with pytest.raises(ValueError, match="no predictors"):
        Echo().get_lm()


def test_repr_lists_the_named_predictors():
    program = TwoStep()
    text = repr(program)
    assert text.startswith("TwoStep(\n")
    assert "  inner.predict = " in text and "  by_name['nested']['deep'] = " in text
    assert repr(Echo()) == "Echo()"
    assert "self = FakePredict('question -> answer')" in repr(FakePredict())


# --- in-memory state ---------------------------------------------------------------------
def test_dump_and_load_state_round_trip():
    source = TwoStep()
    teach(source, "learned")
    target = TwoStep()
    target.load_state(source.dump_state())
    assert learned(target) == learned(source)
    assert target.first.demos[0] == source.first.demos[0]


def test_load_state_is_all_or_nothing():
    program = TwoStep()
    teach(program, "before")
    before = learned(program)
    state = TwoStep().dump_state()
    state["count"] = {"value": "not an int"}        # the last parameter is invalid
    with pytest.raises(StateError, match=r"parameter 'count': 'value' must be an int"):
        program.load_state(state)
    assert learned(program) == before
    with pytest.raises(StateError, match="maps parameter names to states"):
        program.load_state(["not", "a", "dict"])


def test_a_failing_load_state_is_rolled_back():
    class Fragile(FakePredict):
        def load_state(self, state):
            raise RuntimeError("disk on fire")

    program = TwoStep()
    program.zlast = Fragile("z -> z")
    teach(program, "before")
    before = learned(program)
    state = program.dump_state()
    state["first"]["instructions"] = "new"
    with pytest.raises(RuntimeError, match="disk on fire"):
        program.load_state(state)
    assert learned(program) == before


def test_parameter_base_methods_explain_what_to_define():
    class Bare(Parameter):
        pass

    for call in (lambda p: p.dump_state(), lambda p: p.load_state({}), lambda p: p.validate_state({}),
                 lambda p: p.reset()):
        with pytest.raises(NotImplementedError, match="Bare is a Parameter but does not define"):
            call(Bare())


# --- batch -------------------------------------------------------------------------------
class Slow(Module):
    """Answers the question; fails on questions containing 'boom'."""

    def forward(self, question: str) -> Prediction:
        if "boom" in question:
            raise RuntimeError(f"failed on {question}")
        return Prediction(answer=question[::-1])


def test_batch_keeps_input_order_and_accepts_dicts():
    examples = [Example(question=f"q{i}", answer="x").with_inputs("question") for i in range(20)]
    examples.append({"question": "dict"})
    results = Slow().batch(examples, num_threads=4)
    assert [r.answer for r in results] == [f"q{i}"[::-1] for i in range(20)] + ["tcid"]


def test_batch_collects_failures_in_input_order():
    questions = ["a", "boom1", "b", "boom2", "c"]
    examples = [Example(question=q).with_inputs("question") for q in questions]
    results, failed, errors = Slow().batch(examples, num_threads=3, max_errors=5, return_failed_examples=True)
    assert [None if r is None else r.answer for r in results] == ["a", None, "b", None, "c"]
    assert failed == [examples[1], examples[3]]
    assert [str(e) for e in errors] == ["failed on boom1", "failed on boom2"]
    assert Slow().batch(examples, max_errors=5)[1] is None


def test_batch_stops_after_max_errors():
    examples = [{"question": f"boom{i}"} for i in range(5)]
    with pytest.raises(BatchError, match="max_errors=1") as info:
        Slow().batch(examples, num_threads=1, max_errors=1)
    assert isinstance(info.value.__cause__, RuntimeError)


def test_batch_workers_see_the_callers_context():
    var = contextvars.ContextVar("request_id", default="unset")

    class ReadThenWrite(Module):
        def forward(self, question):
            seen = (var.get(), threading.current_thread().name)
            var.set("changed inside")                # must not leak to the next example
            return seen

    token = var.set("caller value")
    try:
        results = ReadThenWrite().batch([{"question": str(i)} for i in range(6)], num_threads=1)
        assert [value for value, _ in results] == ["caller value"] * 6
        assert all(name.startswith("plait-batch") for _, name in results)
        results = ReadThenWrite().batch([{"question": str(i)} for i in range(6)], num_threads=3)
        assert [value for value, _ in results] == ["caller value"] * 6
        assert var.get() == "caller value"
    finally:
        var.reset(token)


def test_batch_checks_its_input_up_front():
    with pytest.raises(ValueError, match=r"examples\[1\] has no input keys"):
        Slow().batch([{"question": "a"}, Example(question="b")])
    with pytest.raises(TypeError, match=r"examples\[0\] is a str"):
        Slow().batch(["question"])
    with pytest.raises(ValueError, match="num_threads must be an int >= 1"):
        Slow().batch([{"question": "a"}], num_threads=0)
    assert Slow().batch([]) == []
    assert Slow().batch([], return_failed_examples=True) == ([], [], [])


def test_batch_default_threads_come_from_settings():
    from plait.settings import settings

    class ThreadNames(Module):
        def __init__(self):
            self.names = set()
            self.barrier = threading.Barrier(2, timeout=5)

        def forward(self, question):
            self.barrier.wait()                      # two workers must run at the same time
            self.names.add(threading.current_thread().name)
            return question

    program = ThreadNames()
    with settings.context(num_threads=2):
        assert program.batch([{"question": "a"}, {"question": "b"}]) == ["a", "b"]
    assert len(program.names) == 2


def test_asyncio_gather_of_acall_runs_concurrently():
    class Gate(Module):
        def __init__(self):
            self.barrier = threading.Barrier(3, timeout=5)

        def forward(self, question):
            self.barrier.wait()
            return question

    async def main():
        gate = Gate()
        return await asyncio.gather(*(gate.acall(question=str(i)) for i in range(3)))

    assert asyncio.run(main()) == ["0", "1", "2"]


def test_counter_is_discovered_as_a_parameter_not_a_predictor():
    program = Module()
    program.count = Counter(3)
    assert program.named_parameters() == [("count", program.count)]
    assert program.named_predictors() == []
