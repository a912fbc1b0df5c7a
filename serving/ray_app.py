"""Ray Serve entry point: serveConfigV2's `import_path: serving.ray_app:app`.

The deployment builds the engine from the LLM_EKS_* environment (serving/settings.py) and hands every HTTP request
to the OpenAI layer, streaming responses included. Replicas need `neuron_cores` = the tensor-parallel degree; the
RayService sets that resource on its Neuron workers and on the deployment's actor options.
"""

from __future__ import annotations

import os

from ray import serve
from starlette.requests import Request
from starlette.responses import Response

from .openai_api import OpenAIServer
from .settings import from_env


@serve.deployment(name="llm")
class LLMDeployment:
    def __init__(self) -> None:
        from .vllm_engine import VLLMEngine  # vLLM exists on the Neuron workers only

        settings = from_env(os.environ)
        self.server = OpenAIServer(VLLMEngine(settings), settings.served_model_name)

    async def __call__(self, request: Request) -> Response:
        return await self.server.handle(request)

    async def check_health(self) -> None:
        # Ray Serve restarts a replica whose check raises. A dead engine raises from ready() (vLLM's check_health:
        # EngineDeadError); that error propagates as it is, so the controller logs the engine's own reason.
        if not await self.server.engine.ready():
            raise RuntimeError("engine not ready")


app = LLMDeployment.bind()
