"""The tool-call core: pure logic shared by every stage and by the trainer's reward.

Nothing in this package may import Kafka, model runtimes or any third-party package other than
pydantic: verl imports the reward from its own environment (see ``toolcall.reward``).
"""
