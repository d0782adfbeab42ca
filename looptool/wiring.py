"""Wiring: the app's settings turned into the stages' dependencies, and the worker that runs them.

Stages come from the registry (:mod:`streams.registry`); what they need at the edges comes from
:class:`AppClients`: the policy's inference backend (``[policy]``), the LLM roles (``[judge]`` and
its panel, ``[generator]``, ``[verifier]``: OpenAI-compatible endpoints; else the synthetic world's
simulations when ``[world]`` is set, for offline runs only), and the run's log on Kafka.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from bus.kafka import ensure_topics, run_log
from bus.worker import run_stages
from inference.base import InferenceBackend
from looptool.config import Settings
from streams import registry
from streams.config import EndpointSettings, RoleSettings
from streams.registry import EventLog
from streams.roles import Generator, JudgeClient, JudgePanel, RoleSampling, Verifier
from streams.stage import Stage


def endpoint_backend(
    endpoint: EndpointSettings,
    *,
    logprobs: bool = True,
    template_opens_trace: bool = False,
    chat_template_kwargs: dict[str, Any] | None = None,
) -> Any:
    """An OpenAI-compatible backend for an endpoint; ``logprobs``: ask for the answer's token
    log-probs (the policy's perplexity needs them; the roles never read them, and some servers, such
    as DeepSeek's reasoning models, refuse the field); ``template_opens_trace`` and
    ``chat_template_kwargs``: the policy's ``[policy]`` settings (the roles read their own from their
    settings)."""
    from inference.openai_backend import OpenAIBackend

    return OpenAIBackend(
        endpoint.base_url,
        endpoint.model,
        api_key=endpoint.resolved_api_key(),
        logprobs=logprobs,
        budget_field=endpoint.budget_field,
        timeout_s=endpoint.timeout_s,
        max_concurrency=endpoint.max_concurrency,
        max_retries=endpoint.max_retries,
        breaker_threshold=endpoint.breaker_threshold,
        breaker_cooldown_s=endpoint.breaker_cooldown_s,
        vllm_extensions=endpoint.vllm_extensions,
        extra_body=endpoint.extra_body or None,
        chat_template_kwargs=chat_template_kwargs or getattr(endpoint, "chat_template_kwargs", None) or None,
        send_seed=endpoint.seeded_sampling,
        # A role's timeout is for its max_tokens; its retry with a larger budget gets more time.
        timeout_tokens=endpoint.max_tokens if isinstance(endpoint, RoleSettings) else None,
        template_opens_trace=template_opens_trace,
    )


def policy_backend(
    settings: Settings,
    *,
    model_path: str | None = None,
    model_id: str = "initial",
    batch_size: int | None = None,
) -> InferenceBackend:
    """The policy's inference backend (``[policy]``): the probe's, the evaluate stage's and
    ``looptool eval``'s, built one way.

    A local backend loads ``model_path`` (default: the initial model, ``[policy] model_path``) as
    ``model_id``; ``batch_size`` overrides ``[policy] batch_size`` (``looptool eval --batch-size``).
    A served policy starts on ``[policy.endpoint] model`` whatever the folder: switch it to a checkpoint
    with ``load`` (the endpoint serves each one under its id).
    """
    from inference.factory import make_backend

    policy = settings.policy
    if model_path is None:
        model_path = str(policy.model_path) if policy.model_path else ""
    if policy.backend == "openai":
        assert policy.endpoint is not None  # the settings refuse "openai" without it
        return endpoint_backend(  # type: ignore[no-any-return]
            policy.endpoint,
            template_opens_trace=policy.template_opens_trace,
            chat_template_kwargs=policy.chat_template_kwargs,
        )
    if policy.backend == "vllm":
        return make_backend(  # type: ignore[no-any-return]
            "vllm",
            model_path=model_path,
            model_id=model_id,
            gpu_memory_utilization=policy.gpu_memory_utilization,
            max_model_len=policy.max_model_len,
            enforce_eager=policy.enforce_eager,
            chat_template_kwargs=policy.chat_template_kwargs,
        )
    if policy.torch_threads is not None:
        import torch

        # Process-wide: the worker's only torch user is the probe's policy. One thread is fastest when
        # the trainer shares the cores (measured: 64 prompts in 3.4-4.1 s on 1 thread, 37-40 s on 2).
        torch.set_num_threads(policy.torch_threads)
    return make_backend(  # type: ignore[no-any-return]
        "transformers",
        model_path=model_path,
        model_id=model_id,
        batch_size=batch_size or policy.batch_size,
        chat_template_kwargs=policy.chat_template_kwargs,
    )


class AppClients:
    """The stages' dependencies built from the app's settings (:class:`streams.registry.StageClients`).

    ``log``: the run's log the services follow (:func:`bus.kafka.run_log` for the configured run);
    in-process runs (the serial loop) pass ``None`` and feed the stages themselves.
    """

    def __init__(self, settings: Settings, *, log: EventLog | None):
        self.settings = settings
        self._log = log
        self._servers: dict[str, Any] = {}

    def policy_backend(self) -> InferenceBackend:
        return policy_backend(self.settings)

    def event_log(self) -> EventLog | None:
        return self._log

    def _world(self, role: str) -> Any:
        """The synthetic world behind a simulated role; refuses when neither it nor an endpoint is set."""
        from world import World

        if self.settings.world is None:
            raise ValueError(
                f"the {role} needs an OpenAI-compatible endpoint ([{role}] in the config), or a synthetic "
                "world ([world]) to simulate it offline"
            )
        return World(self.settings.world.seed)

    def _simulated_server(self, role: str) -> Any:
        """The simulated endpoint of a role per ``[world] endpoint_latency`` (one per role and process)."""
        world = self.settings.world
        if world is None or world.endpoint_latency == "none":
            return None
        if role not in self._servers:
            from inference.latency import VLLM_32B_H100, SimulatedServer

            self._servers[role] = SimulatedServer(VLLM_32B_H100[role], time_scale=world.latency_time_scale)
        return self._servers[role]

    def judge(self) -> JudgeClient:
        """The (first) judge: an LLM when [judge] is configured; else the world's simulated judge."""
        return self.judge_panel().judges[0]

    def judge_panel(self) -> JudgePanel:
        """The LLM judges of [judge] and [[judge.panel]], with their quorum; else the world's simulation."""
        settings = self.settings
        if settings.judge is not None:
            from streams.judge import LLMJudge

            judges = [
                LLMJudge(
                    endpoint_backend(role, logprobs=False),
                    current_time=settings.loop.current_time,
                    sampling=RoleSampling.from_settings(role),
                    constrain=role.constrain_output,
                )
                for role in settings.judge.judges()
            ]
            return JudgePanel(
                judges=judges,
                quorum=settings.judge.quorum,
                no_quorum=settings.judge.no_quorum,
                two_order=settings.judge.two_order,
            )
        from world.simulation import SimulatedWorldJudge

        world = self._world("judge")
        judge = SimulatedWorldJudge(
            world,
            error_rate=settings.world.judge_error_rate,  # type: ignore[union-attr]
            server=self._simulated_server("judge"),
        )
        return JudgePanel(judges=[judge])

    def generator(self) -> Generator:
        """The LLM generator when an endpoint is configured; else the world's simulated generator."""
        settings = self.settings
        if settings.generator is not None:
            from streams.expand import LLMGenerator

            return LLMGenerator(
                endpoint_backend(settings.generator, logprobs=False),
                current_time=settings.loop.current_time,
                sampling=RoleSampling.from_settings(settings.generator),
            )
        from world.simulation import SimulatedWorldGenerator

        world = self._world("generator")
        return SimulatedWorldGenerator(
            world,
            defect_rate=settings.world.generator_defect_rate,  # type: ignore[union-attr]
            server=self._simulated_server("generator"),
        )

    def verifier(self) -> Verifier:
        """The LLM verifier ([verifier] over [judge]) when configured; else the world's simulated verifier."""
        settings = self.settings
        role: RoleSettings | None = settings.verifier_role()
        if role is not None:
            from streams.verify import LLMVerifier

            return LLMVerifier(
                endpoint_backend(role, logprobs=False),
                current_time=settings.loop.current_time,
                sampling=RoleSampling.from_settings(role),
                constrain=role.constrain_output,
            )
        from world.simulation import SimulatedWorldVerifier

        world = self._world("verifier")
        return SimulatedWorldVerifier(
            world,
            error_rate=settings.world.verifier_error_rate,  # type: ignore[union-attr]
            server=self._simulated_server("verifier"),
        )


def build_stages(settings: Settings, names: Sequence[str], *, log: EventLog | None) -> list[Stage]:
    """The registered stages among ``names`` (services such as curate are left out: see run_worker)."""
    clients = AppClients(settings, log=log)
    return [registry.build(name, settings, clients) for name in names if registry.entry(name).kind == "stage"]


async def run_worker(settings: Settings, names: Sequence[str], stop: asyncio.Event) -> None:
    """Run the named stages (and services) of the configured run until ``stop`` is set."""
    await ensure_topics(settings.kafka, settings.run_id)
    clients = AppClients(settings, log=run_log(settings))
    built = [(registry.entry(name), registry.build(name, settings, clients)) for name in names]
    tasks = [asyncio.create_task(part.run(stop)) for entry, part in built if entry.kind == "service"]
    stages = [part for entry, part in built if entry.kind == "stage"]
    if stages:
        tasks.append(asyncio.create_task(run_stages(settings, stages, stop)))
    await asyncio.gather(*tasks)
