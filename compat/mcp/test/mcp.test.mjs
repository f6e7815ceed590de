// Drives `cubicle mcp` over stdio with the official TypeScript MCP SDK, the
// way an MCP client such as Claude Desktop does, against a running
// `cubicle serve`. Environment:
//   CUBICLE_URL, CUBICLE_API_KEY  the server (required; the test skips without them)
//   CUBICLE_BIN                   the cubicle binary (default ../../bin/cubicle)
//   CUBICLE_SANDBOX               use this sandbox instead of creating one
import { test } from "node:test";
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";

const bin = process.env.CUBICLE_BIN || fileURLToPath(new URL("../../../bin/cubicle", import.meta.url));
const configured = process.env.CUBICLE_URL && process.env.CUBICLE_API_KEY;

const PNG = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

function image(result) {
  const img = result.content.find((c) => c.type === "image");
  assert.ok(img, `no image in ${JSON.stringify(result.content).slice(0, 300)}`);
  assert.equal(img.mimeType, "image/png");
  const data = Buffer.from(img.data, "base64");
  assert.deepEqual(data.subarray(0, 8), PNG, "the image is not a PNG");
  return data;
}

function text(result) {
  return result.content.filter((c) => c.type === "text").map((c) => c.text).join("\n");
}

async function call(client, name, args) {
  const result = await client.callTool({ name, arguments: args });
  assert.ok(!result.isError, `${name} failed: ${text(result)}`);
  return result;
}

test("cubicle mcp over stdio", {
  skip: configured ? false : "set CUBICLE_URL and CUBICLE_API_KEY to a running cubicle serve",
  timeout: 10 * 60 * 1000,
}, async () => {
  const transport = new StdioClientTransport({
    command: bin,
    args: ["mcp"],
    env: { ...process.env },
    stderr: "inherit",
  });
  const client = new Client({ name: "cubicle-compat-mcp", version: "1.0.0" });
  await client.connect(transport);
  let created = "";
  try {
    const { tools } = await client.listTools();
    const names = tools.map((t) => t.name);
    for (const want of ["create_sandbox", "screenshot", "click", "type", "key", "run_command", "read_file", "write_file"]) {
      assert.ok(names.includes(want), `tools ${names} lack ${want}`);
    }
    const click = tools.find((t) => t.name === "click");
    assert.equal(click.inputSchema.type, "object");
    assert.ok(click.inputSchema.properties.x.description, "click.x has no description");

    if (process.env.CUBICLE_SANDBOX) {
      await call(client, "connect_sandbox", { sandbox_id: process.env.CUBICLE_SANDBOX });
    } else {
      const res = await call(client, "create_sandbox", { timeout_s: 300, metadata: { suite: "compat-mcp" } });
      created = res.structuredContent.id;
      assert.match(created, /^[a-z0-9]+$/);
    }

    const shot = await call(client, "screenshot", {});
    assert.ok(image(shot).length > 1000);
    assert.ok(shot.structuredContent.width > 0 && shot.structuredContent.height > 0);

    const clicked = await call(client, "click", { x: 120, y: 110, screenshot: true });
    image(clicked);
    assert.deepEqual(clicked.structuredContent.cursor, { x: 120, y: 110 });

    const ran = await call(client, "run_command", { command: "echo from-node; echo oops >&2; exit 4" });
    assert.equal(ran.structuredContent.exit_code, 4);
    assert.equal(ran.structuredContent.stdout, "from-node\n");
    assert.equal(ran.structuredContent.stderr, "oops\n");

    const bad = await client.callTool({ name: "click", arguments: { x: 99999, y: 1 } });
    assert.equal(bad.isError, true);
    assert.match(text(bad), /out_of_bounds/);

    if (created) {
      await call(client, "kill_sandbox", {});
      created = "";
    }
  } finally {
    if (created) {
      await client.callTool({ name: "kill_sandbox", arguments: { sandbox_id: created } }).catch(() => {});
    }
    await client.close();
  }
});
