"""`darkroom status`: the stack, the Modal app, and how many messages wait in each dead-letter queue."""

from __future__ import annotations

from dataclasses import dataclass, field

from botocore.exceptions import ClientError

from . import modal_account, tools
from . import stack as stacks

DLQ_SUFFIX = "DeadLetterQueueUrl"


@dataclass
class Status:
    stack: stacks.Stack | None
    modal_app: str = ""
    modal_state: str = ""
    dead_letters: dict[str, int | str] = field(default_factory=dict)  # output name -> depth, or why unknown

    @property
    def healthy(self) -> bool:
        return (self.stack is not None and self.stack.status.endswith("_COMPLETE")
                and "ROLLBACK" not in self.stack.status
                and all(depth == 0 for depth in self.dead_letters.values()))


def gather(stack_name: str, template_defaults: dict[str, str]) -> Status:
    stack = stacks.describe(stack_name)
    status = Status(stack)
    if stack is None:
        return status
    status.modal_app = stack.parameters.get("ModalAppName") or template_defaults.get("ModalAppName", "")
    environment = stack.parameters.get("ModalEnvironment") or template_defaults.get("ModalEnvironment", "")
    try:
        status.modal_state = modal_account.app_state(status.modal_app, environment)
    except (tools.ToolError, ValueError) as exc:
        status.modal_state = f"unknown ({exc})"
    for name, url in sorted(stack.outputs.items()):
        if name.endswith(DLQ_SUFFIX):
            try:
                status.dead_letters[name.removesuffix("Url")] = stacks.queue_depth(url)
            except ClientError as exc:  # one unreadable queue must not hide the others
                status.dead_letters[name.removesuffix("Url")] = f"unknown ({exc})"
    return status
