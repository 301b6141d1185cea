"""`app.py --mcp`: the ask function as an MCP tool, called by a real MCP client."""

import asyncio

import pytest
from conftest import INTERVIEW, read_exact, serve

pytestmark = pytest.mark.integration
mcp = pytest.importorskip("mcp", reason="the MCP extra is not installed: pip install 'gradio[mcp]'")


@pytest.fixture(scope="module")
def server(tmp_path_factory, interview_index):
    yield from serve(tmp_path_factory.mktemp("mcp"), "--mcp", index=interview_index)


async def call(url: str, name: str, arguments: dict) -> tuple[list[str], str]:
    from mcp import ClientSession
    from mcp.client.streamable_http import streamablehttp_client

    async with streamablehttp_client(url) as (read, write, _), ClientSession(read, write) as session:
        await session.initialize()
        tools = [t.name for t in (await session.list_tools()).tools]
        result = await session.call_tool(name, arguments)
        return tools, result.content[0].text


def test_ask_is_an_mcp_tool_returning_the_answer_object(server):
    import ast
    import json

    tools, text = asyncio.run(call(server + "/gradio_api/mcp/", "ask_interview",
                                   {"question": "When did Russia annex Crimea?", "k": 2}))  # fmt: skip
    assert "ask_interview" in tools
    try:
        answer = json.loads(text)
    except ValueError:
        answer = ast.literal_eval(text)
    assert answer["answered"] and 1 <= len(answer["quotes"]) <= 2
    raw = read_exact(INTERVIEW)
    for q in answer["quotes"]:
        assert raw[q["start"] : q["end"]] == q["text"]
    assert "2014" in answer["quotes"][0]["text"]
