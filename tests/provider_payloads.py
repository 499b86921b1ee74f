"""Payloads shaped like the OpenAI Responses and Conversations APIs, for respx mocks."""

CONVERSATION_ID = "conv_abc123"
RESPONSE_ID = "resp_abc123"


def conversation(conversation_id: str = CONVERSATION_ID) -> dict:
    return {"id": conversation_id, "object": "conversation", "created_at": 1, "metadata": {}}


def response(status: str, text: str | None = None, error: dict | None = None, **extra) -> dict:
    output = []
    if text is not None:
        output.append(
            {
                "type": "message",
                "id": "msg_out1",
                "role": "assistant",
                "status": "completed",
                "content": [{"type": "output_text", "text": text, "annotations": []}],
            }
        )
    usage = None
    if status == "completed":
        usage = {
            "input_tokens": 12,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": 5,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": 17,
        }
    return {
        "id": RESPONSE_ID,
        "object": "response",
        "created_at": 1,
        "status": status,
        "background": True,
        "model": "gpt-test",
        "output": output,
        "error": error,
        "incomplete_details": None,
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [],
        "usage": usage,
        **extra,
    }


def api_error(message: str, code: str, error_type: str = "invalid_request_error") -> dict:
    return {"error": {"message": message, "type": error_type, "code": code, "param": None}}
