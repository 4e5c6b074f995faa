/**
 * The floor under every drain in `pnpm bench --peers`: the same signed POSTs (the peers'
 * `Sender`: Standard Webhooks signature, undici, 32 connections, 32 in flight) to the same
 * receiver, with no database at all. Prints requests/s, the sender's and the receiver's CPU
 * per request and the whole box's, so a drain's CPU per delivery can be read against what
 * the HTTP part alone costs on this machine. Not part of `pnpm bench`.
 *
 *   pnpm exec tsx bench/http-floor.ts [--requests 60000] [--runs 3]
 */
import { parseArgs } from 'node:util';
import { hostCpuMs, processCpuMs, type Receiver, waitFor } from './lib.js';
import { type Job, jobsOf, PEER_CONCURRENCY, type Sender, withSender } from './peers.js';

const { values: args } = parseArgs({
  options: { requests: { type: 'string', default: '60000' }, runs: { type: 'string', default: '3' } },
});
const REQUESTS = Number(args.requests);

async function run(receiver: Receiver, sender: Sender): Promise<void> {
  const jobs: Job[] = [];
  for (let n = 0; jobs.length < REQUESTS; n++) jobs.push(...jobsOf(n));
  await receiver.reset();
  const pid = receiver.child.pid as number;
  const s0 = processCpuMs();
  const r0 = processCpuMs(pid);
  const h0 = hostCpuMs();
  let next = 0;
  await Promise.all(
    Array.from({ length: PEER_CONCURRENCY }, async () => {
      while (next < jobs.length) await sender.send(jobs[next++] as Job);
    }),
  );
  const s1 = processCpuMs();
  const r1 = processCpuMs(pid);
  const h1 = hostCpuMs();
  await waitFor(async () => (await receiver.stats()).count >= jobs.length, 60_000, 'the receiver to count');
  const st = await receiver.stats();
  if (st.badSignatures > 0) throw new Error(`${st.badSignatures} bad signatures`);
  const per = (ms: number) => (ms / jobs.length).toFixed(3);
  console.log(
    `${Math.round(jobs.length / ((st.last - st.first) / 1000))} requests/s · sender ${per(s1 - s0)} ms, ` +
      `receiver ${per(r1 - r0)} ms, whole box ${per(h1.busy - h0.busy)} ms CPU per request, ` +
      `${Math.round((100 * (h1.busy - h0.busy)) / (h1.total - h0.total))} % busy`,
  );
}

async function main() {
  await withSender(async (receiver, sender) => {
    for (let i = 0; i < Number(args.runs); i++) await run(receiver, sender);
  });
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
