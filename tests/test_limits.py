"""Admission control and the render deadline: overload is refused at once, never piled up."""

import threading

import pytest
import pyvips

from pixfit import Config, render
from pixfit.budget import fit_budget
from pixfit.errors import Overloaded
from pixfit.formats import Encoder
from pixfit.limiter import RenderSlots
from pixfit.registry import ImageFormat


def test_slots_admit_up_to_the_limit_then_queue_then_refuse() -> None:
    slots = RenderSlots(concurrent=1, queue=1, wait_seconds=5)
    seen: list[int] = []
    holding, release = threading.Event(), threading.Event()

    def hold() -> None:
        with slots.slot():
            holding.set()
            release.wait(5)

    def wait_in_queue() -> None:
        with slots.slot():
            seen.append(1)

    first = threading.Thread(target=hold)
    first.start()
    assert holding.wait(5)
    queued = threading.Thread(target=wait_in_queue)
    queued.start()
    while slots.waiting == 0:  # the second render is now queued
        threading.Event().wait(0.01)
    # The third is refused at once.
    with pytest.raises(Overloaded, match="Too many renders are queued"), slots.slot():
        pass
    release.set()
    first.join(5)
    queued.join(5)
    assert seen == [1] and slots.waiting == 0


def test_a_queued_render_gives_up_after_its_wait() -> None:
    slots = RenderSlots(concurrent=1, queue=4, wait_seconds=0.05)
    with slots.slot(), pytest.raises(Overloaded, match="No render slot came free"), slots.slot():
        pass
    with slots.slot():  # the slot was released on the way out
        pass


def test_queue_changes_are_reported() -> None:
    reported: list[int] = []
    slots = RenderSlots(concurrent=1, queue=1, wait_seconds=0.01, on_queue_change=reported.append)
    with slots.slot(), pytest.raises(Overloaded), slots.slot():
        pass
    assert reported == [1, 0]


def test_a_render_past_its_deadline_is_cut() -> None:
    noise = pyvips.Image.gaussnoise(4000, 3000).cast("uchar")
    photo = noise.bandjoin([noise, noise]).copy(interpretation="srgb").jpegsave_buffer(Q=95)
    options = {"w": 3000, "h": 3000, "fit": "cover", "pos": "attention"}
    hurried = Config().merged({"limits": {"render_timeout": 0.01}})
    with pytest.raises(Overloaded, match="deadline"):
        render(photo, options, config=hurried)
    assert render(photo, options).width == 3000  # the same render, given time, completes


def test_the_budget_search_stops_shrinking_past_its_deadline() -> None:
    noise = pyvips.Image.gaussnoise(800, 600).cast("uchar")
    image = noise.bandjoin([noise, noise]).copy(interpretation="srgb").copy_memory()
    encoder = Encoder(ImageFormat.JPEG, palette=True)
    unhurried = fit_budget(image, encoder, 80, 40, budget=2000)
    late = fit_budget(image, encoder, 80, 40, budget=2000, deadline=0.0)
    assert unhurried.best.width < 800  # with time, it shrinks towards the budget
    assert late.best.width == 800 and late.budget_met is False  # past the deadline, it stops
    assert late.encodes < unhurried.encodes
