"""The simulated ElevenLabs agent, a Django app of its own (``SIMULATOR_ENABLED``, on by default).

It stands where ElevenLabs stands, behind the seam in :mod:`elevenlabs.backends`
(:class:`elevenlabs.simulator.backend.SimulatedAgentBackend`, named by the
``ELEVENLABS_SIMULATOR_BACKEND`` setting): the same credential and conversation
shapes, a local WebSocket that speaks ElevenLabs' ConvAI protocol (so the official
browser client connects unchanged), and a signed post-call webhook to our own
endpoint. Nothing outside this package imports it except the project's settings,
urls and asgi; production may leave it out of INSTALLED_APPS.

- :mod:`.agents`: the scripted agents;
- :mod:`.voice`: the agent's synthetic voice and the user's speech detection;
- :mod:`.signed_urls`: minting and verifying the signed WebSocket URL;
- :mod:`.conversations`: details, the end of a conversation, the post-call webhook;
- :mod:`.consumers` and :mod:`.routing`: the WebSocket itself.
"""
