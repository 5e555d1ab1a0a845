// Print the customer event log with kafkajs, one JSON object per record (as `make tail ARGS=--json`).
//
//   node tools/kafkajs/tail.mjs [--bootstrap 127.0.0.1:9092] [--topic rapport.customer-events]
//                               [--limit N] [--idle-exit SECONDS]
//
// It joins a consumer group of its own (a new one each run, so it reads from the first
// record and commits nothing the services use) and exits once no record has arrived for
// --idle-exit seconds, or after --limit records. It uses no Rapport code.
import { randomUUID } from "node:crypto";
import { Kafka, logLevel } from "kafkajs";

function option(name, fallback) {
  const at = process.argv.indexOf(`--${name}`);
  return at > 0 && at + 1 < process.argv.length ? process.argv[at + 1] : fallback;
}

const bootstrap = option("bootstrap", process.env.KAFKA_BOOTSTRAP_SERVERS ?? "127.0.0.1:9092");
const topic = option("topic", process.env.KAFKA_TOPIC ?? "rapport.customer-events");
const limit = Number(option("limit", "0"));
const idleExitMs = Number(option("idle-exit", "5")) * 1000;

const text = (buffer) => (buffer == null ? "" : buffer.toString("utf8"));

function parsed(buffer) {
  try {
    return JSON.parse(text(buffer));
  } catch {
    return text(buffer);
  }
}

const kafka = new Kafka({ clientId: "rapport-tail-js", brokers: bootstrap.split(","), logLevel: logLevel.ERROR });
// The dev broker lets a member join only after half its session timeout: keep it short.
const consumer = kafka.consumer({ groupId: `rapport-tail-js-${randomUUID()}`, sessionTimeout: 6000 });
let printed = 0;
let lastSeen = Date.now();
let joined = false;

consumer.on(consumer.events.GROUP_JOIN, () => {
  joined = true;
  lastSeen = Date.now();
});
await consumer.connect();
await consumer.subscribe({ topic, fromBeginning: true });
await consumer.run({
  autoCommit: false,
  eachMessage: async ({ topic: from, partition, message }) => {
    if (limit && printed >= limit) return;
    lastSeen = Date.now();
    const headers = Object.fromEntries(
      Object.entries(message.headers ?? {}).map(([name, value]) => [name, text(value)]),
    );
    const record = { topic: from, partition, offset: Number(message.offset), key: text(message.key), headers, value: parsed(message.value) };
    process.stdout.write(`${JSON.stringify(record)}\n`);
    printed += 1;
  },
});
await new Promise((resolve) => {
  const timer = setInterval(() => {
    const done = limit && printed >= limit;
    if (done || (joined && Date.now() - lastSeen > idleExitMs)) {
      clearInterval(timer);
      resolve();
    }
  }, 100);
});
await consumer.disconnect();
