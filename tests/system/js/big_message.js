#!/usr/bin/env node
// One large message through Vane with rhea, every byte checked.
//
//   node big_message.js --send-port P --receive-port Q [--size BYTES]
//                       [--address A] [--timeout SECONDS]
//
// A receiver attaches to ADDRESS on its own connection to 127.0.0.1:Q. Once
// the router has answered its attach, a sender on a second connection to
// 127.0.0.1:P sends one unsettled message whose body is a single data
// section of SIZE bytes, byte i = (i * 31 + 7) & 255. The receiver compares
// every byte and accepts; the sender waits for the outcome.
//
// Prints one JSON line on stdout and exits 0 when the body arrived intact
// and the sender saw `accepted`, 1 otherwise (timeouts, connection errors,
// corruption: the JSON says which, with the first corrupted offset and the
// bytes found there).

'use strict';

const rhea = require('rhea');

function parseArgs(argv) {
  const opts = {size: 5 * 1024 * 1024, address: 'big2', timeout: 60};
  for (let i = 2; i < argv.length; i++) {
    const key = argv[i];
    const value = argv[++i];
    if (value === undefined) usage(`${key} needs a value`);
    if (key === '--send-port') opts.sendPort = Number(value);
    else if (key === '--receive-port') opts.receivePort = Number(value);
    else if (key === '--size') opts.size = Number(value);
    else if (key === '--address') opts.address = value;
    else if (key === '--timeout') opts.timeout = Number(value);
    else usage(`unknown option ${key}`);
  }
  if (!opts.sendPort || !opts.receivePort) usage('--send-port and --receive-port are required');
  return opts;
}

function usage(problem) {
  process.stderr.write(`big_message.js: ${problem}\n`);
  process.exit(2);
}

function pattern(size) {
  const buf = Buffer.allocUnsafe(size);
  for (let i = 0; i < size; i++) buf[i] = (i * 31 + 7) & 255;
  return buf;
}

// Where `got` differs from `want`: count of differing bytes, first offset,
// and 32 bytes from there (hex) in both.
function compare(got, want) {
  const result = {received_size: got.length, mismatched_bytes: 0, first_bad_offset: null};
  const n = Math.min(got.length, want.length);
  for (let i = 0; i < n; i++) {
    if (got[i] !== want[i]) {
      if (result.first_bad_offset === null) result.first_bad_offset = i;
      result.mismatched_bytes++;
    }
  }
  if (result.first_bad_offset !== null) {
    const at = result.first_bad_offset;
    result.bad_bytes = got.subarray(at, at + 32).toString('hex');
    result.expected_bytes = want.subarray(at, at + 32).toString('hex');
  }
  return result;
}

function bodyBytes(body) {
  // A single data section arrives as a Section {typecode 0x75, content}.
  if (Buffer.isBuffer(body)) return body;
  if (body && body.typecode === 0x75 && Buffer.isBuffer(body.content)) return body.content;
  return null;
}

function main() {
  const opts = parseArgs(process.argv);
  const expected = pattern(opts.size);
  const report = {size: opts.size, address: opts.address};
  let received = false;
  let outcome = null;
  const connections = [];

  function finish(error) {
    if (report.done) return;
    report.done = true;
    if (error) report.error = error;
    report.ok = !error && received && report.intact === true && outcome === 'accepted';
    process.stdout.write(JSON.stringify(report) + '\n');
    for (const c of connections) c.close();
    // Do not wait for closes to complete: exit once stdout is flushed.
    process.stdout.write('', () => process.exit(report.ok ? 0 : 1));
  }

  const timer = setTimeout(() => {
    finish(`timed out after ${opts.timeout} s (received: ${received}, outcome: ${outcome})`);
  }, opts.timeout * 1000);
  timer.unref();

  const container = rhea.create_container({id: 'vane-big-message'});
  container.on('error', (ctx) => finish(`container error: ${ctx.error}`));
  container.on('disconnected', (ctx) => {
    if (!report.done) finish(`disconnected: ${ctx.error || 'no error given'}`);
  });
  container.on('connection_error', (ctx) => {
    finish(`connection error: ${JSON.stringify(ctx.connection.error)}`);
  });

  const rconn = container.connect({host: '127.0.0.1', port: opts.receivePort, reconnect: false});
  connections.push(rconn);
  const receiver = rconn.open_receiver({source: opts.address, credit_window: 2, autoaccept: false});
  receiver.on('message', (ctx) => {
    received = true;
    const got = bodyBytes(ctx.message.body);
    if (got === null) {
      report.intact = false;
      ctx.delivery.reject({condition: 'amqp:decode-error', description: 'not one data section'});
      finish(`body is not one data section: ${typeof ctx.message.body}`);
      return;
    }
    Object.assign(report, compare(got, expected));
    report.intact = got.length === expected.length && report.mismatched_bytes === 0;
    ctx.delivery.accept();
  });

  // The sender's connection is opened only once the receiver is attached,
  // so the router has a consumer (and gives credit) when the message comes.
  receiver.once('receiver_open', () => {
    const sconn = container.connect({host: '127.0.0.1', port: opts.sendPort, reconnect: false});
    connections.push(sconn);
    const sender = sconn.open_sender({target: opts.address, autosettle: true});
    let sent = false;
    sender.on('sendable', () => {
      if (sent) return;
      sent = true;
      sender.send({body: rhea.message.data_section(expected)});
    });
    sender.on('accepted', () => { outcome = 'accepted'; done(); });
    sender.on('rejected', (ctx) => { outcome = 'rejected'; done(ctx.delivery.remote_state); });
    sender.on('released', () => { outcome = 'released'; done(); });
    sender.on('modified', () => { outcome = 'modified'; done(); });
  });

  function done(state) {
    report.outcome = outcome;
    if (state && state.error) report.outcome_error = state.error;
    if (!received) finish(`sender saw ${outcome} before the receiver had the message`);
    else finish(outcome === 'accepted' ? undefined : `sender saw ${outcome}`);
  }
}

main();
