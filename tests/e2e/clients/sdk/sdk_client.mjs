// The official Node SDKs through halton-meter, for tests/e2e/test_meter_*.
//
//   node sdk_client.mjs '{"sdk": "...", "proxy": "http://[tag@]127.0.0.1:PORT",
//                          "apiKey": "...", "model": "...", "prompt": "...",
//                          "stream": true|false, "headers": {...}}'
//
// sdk is one of anthropic (messages.create), openai-chat
// (chat.completions.create, with stream_options.include_usage when
// streaming), openai-responses (responses.create) or genai
// (models.generateContent / generateContentStream).  Node 20's fetch
// ignores HTTPS_PROXY, so every SDK gets undici's fetch with an explicit
// ProxyAgent dispatcher (the user part of the proxy URL becomes
// Proxy-Authorization Basic, the way `halton-meter run --tag` passes a
// tag).  The daemon's CA is trusted through NODE_EXTRA_CA_CERTS.  Prints
// one JSON line: what the SDK itself parsed (model, usage, text).

import Anthropic from "@anthropic-ai/sdk";
import { GoogleGenAI } from "@google/genai";
import OpenAI from "openai";
import { ProxyAgent, fetch as undiciFetch } from "undici";

const spec = JSON.parse(process.argv[2]);

function proxyAgent(url) {
	const u = new URL(url);
	const opts = { uri: `${u.protocol}//${u.host}` };
	if (u.username !== "" || u.password !== "") {
		const cred = `${decodeURIComponent(u.username)}:` +
		    `${decodeURIComponent(u.password)}`;
		opts.token = `Basic ${Buffer.from(cred).toString("base64")}`;
	}
	return new ProxyAgent(opts);
}

const dispatcher = proxyAgent(spec.proxy);
const proxiedFetch = (input, init) =>
	undiciFetch(input, { ...(init || {}), dispatcher });
const headers = spec.headers || {};
const prompt = spec.prompt || "Say hello.";

async function anthropic() {
	const client = new Anthropic({
		apiKey: spec.apiKey,
		fetch: undiciFetch,
		fetchOptions: { dispatcher },
		maxRetries: 0,
		defaultHeaders: headers,
	});
	const params = {
		model: spec.model,
		max_tokens: 64,
		messages: [{ role: "user", content: prompt }],
	};
	if (!spec.stream) {
		const m = await client.messages.create(params);
		return { model: m.model, usage: m.usage,
		    text: m.content.map((c) => c.text).join("") };
	}
	const stream = await client.messages.create({ ...params, stream: true });
	let model = null, usage = {}, text = "", events = 0;
	for await (const ev of stream) {
		events++;
		if (ev.type === "message_start") {
			model = ev.message.model;
			usage = { ...ev.message.usage };
		} else if (ev.type === "message_delta") {
			for (const [k, v] of Object.entries(ev.usage || {}))
				if (v !== null)
					usage[k] = v;
		} else if (ev.type === "content_block_delta") {
			text += ev.delta.text || "";
		}
	}
	return { model, usage, text, events };
}

function openaiClient() {
	return new OpenAI({
		apiKey: spec.apiKey,
		fetch: undiciFetch,
		fetchOptions: { dispatcher },
		maxRetries: 0,
		defaultHeaders: headers,
	});
}

async function openaiChat() {
	const client = openaiClient();
	const params = {
		model: spec.model,
		messages: [{ role: "user", content: prompt }],
	};
	if (!spec.stream) {
		const r = await client.chat.completions.create(params);
		return { model: r.model, usage: r.usage,
		    text: r.choices[0].message.content };
	}
	const stream = await client.chat.completions.create({ ...params,
	    stream: true, stream_options: { include_usage: true } });
	let model = null, usage = null, text = "", events = 0;
	for await (const c of stream) {
		events++;
		model = c.model;
		if (c.usage)
			usage = c.usage;
		for (const ch of c.choices)
			text += (ch.delta && ch.delta.content) || "";
	}
	return { model, usage, text, events };
}

async function openaiResponses() {
	const client = openaiClient();
	const params = { model: spec.model, input: prompt };
	if (!spec.stream) {
		const r = await client.responses.create(params);
		return { model: r.model, usage: r.usage, text: r.output_text };
	}
	const stream = await client.responses.create({ ...params,
	    stream: true });
	let model = null, usage = null, text = "", events = 0;
	for await (const ev of stream) {
		events++;
		if (ev.type === "response.output_text.delta")
			text += ev.delta;
		if (ev.type === "response.completed") {
			model = ev.response.model;
			usage = ev.response.usage;
		}
	}
	return { model, usage, text, events };
}

async function genai() {
	const ai = new GoogleGenAI({
		apiKey: spec.apiKey,
		httpOptions: { fetch: proxiedFetch, headers },
	});
	const params = { model: spec.model, contents: prompt };
	if (!spec.stream) {
		const r = await ai.models.generateContent(params);
		return { model: r.modelVersion, usage: r.usageMetadata,
		    text: r.text };
	}
	const stream = await ai.models.generateContentStream(params);
	let model = null, usage = null, text = "", events = 0;
	for await (const c of stream) {
		events++;
		model = c.modelVersion;
		if (c.usageMetadata)
			usage = c.usageMetadata;
		text += c.text || "";
	}
	return { model, usage, text, events };
}

const run = { anthropic, "openai-chat": openaiChat,
    "openai-responses": openaiResponses, genai }[spec.sdk];
if (run === undefined) {
	console.error(`unknown sdk ${spec.sdk}`);
	process.exit(2);
}
try {
	const out = await run();
	await dispatcher.close();
	console.log(JSON.stringify(out));
} catch (e) {
	console.error(e && e.stack ? e.stack : String(e));
	if (e && e.cause)
		console.error("cause:", e.cause);
	process.exit(1);
}
