// A node (its `tls` module, OpenSSL inside) peer for aiotls's interop tests, run by
// tests/peers.py on loopback.
//
//   node tls_peer.js server --key K.pem --cert C.pem [--ca CA.pem --request-cert]
//                    [--min TLSv1.2] [--max TLSv1.3] [--alpn a,b] [--echo N] [--count K]
//   node tls_peer.js client --port P --ca CA.pem [--servername NAME] [--key K --cert C]
//                    [--min ..] [--max ..] [--alpn a,b] [--echo N] [--count K] [--resume]
//
// The server listens on 127.0.0.1 (ephemeral port) and prints "LISTENING <port>".  Per
// connection each side prints "HANDSHAKE <protocol> <cipher> <alpn|-> <peer CN|-> <reused>",
// echoes N bytes (client writes then reads them back, server reads then writes back), ends
// with socket.end() (close_notify) and prints "CLOSED".  A client with --resume offers the
// session of the previous connection (the last one node reported with the 'session' event).
// Node's server keeps OpenSSL's defaults with a ticket-key callback of its own, so on a
// TLS 1.3 resumption it sends no new ticket.  Failures print "ERROR ..." and exit 1; the end
// is "DONE".  Every wait has a timeout.
'use strict';
const fs = require('fs');
const tls = require('tls');

const TIMEOUT_MS = 10000;
const [role, ...rest] = process.argv.slice(2);
const opts = {};
for (let i = 0; i < rest.length; i++) {
  const name = rest[i].replace(/^--/, '');
  if (name === 'request-cert' || name === 'resume') opts[name] = true;
  else opts[name] = rest[++i];
}
const count = parseInt(opts.count || '1', 10);
const echo = parseInt(opts.echo || '0', 10);

function fail(err) {
  console.log(`ERROR ${err && err.stack ? err.stack.split('\n')[0] : err}`);
  process.exit(1);
}
process.on('uncaughtException', fail);

function common() {
  const o = {};
  if (opts.key) o.key = fs.readFileSync(opts.key);
  if (opts.cert) o.cert = fs.readFileSync(opts.cert);
  if (opts.ca) o.ca = fs.readFileSync(opts.ca);
  if (opts.min) o.minVersion = opts.min;
  if (opts.max) o.maxVersion = opts.max;
  if (opts.alpn) o.ALPNProtocols = opts.alpn.split(',');
  return o;
}

function report(sock) {
  const peer = sock.getPeerCertificate();
  const cn = peer && peer.subject ? peer.subject.CN : '-';
  console.log(`HANDSHAKE ${sock.getProtocol()} ${sock.getCipher().standardName} ` +
              `${sock.alpnProtocol || '-'} ${cn} ${sock.isSessionReused() ? 'reused' : 'full'}`);
}

// Read exactly n bytes, then call done(data).
function readN(sock, n, done) {
  const chunks = [];
  let have = 0;
  if (n === 0) { done(Buffer.alloc(0)); return; }
  sock.on('data', (chunk) => {
    chunks.push(chunk);
    have += chunk.length;
    if (have >= n) { sock.removeAllListeners('data'); done(Buffer.concat(chunks)); }
  });
}

if (role === 'server') {
  const options = common();
  if (opts['request-cert']) { options.requestCert = true; options.rejectUnauthorized = true; }
  let served = 0;
  const server = tls.createServer(options, (sock) => {
    sock.setTimeout(TIMEOUT_MS, () => fail('server socket timeout'));
    report(sock);
    readN(sock, echo, (data) => {
      sock.end(data.subarray(0, echo));
    });
    sock.on('close', () => {
      console.log('CLOSED');
      served += 1;
      if (served >= count) { server.close(); console.log('DONE'); }
    });
    sock.on('error', fail);
  });
  server.on('tlsClientError', (err) => fail(`tlsClientError ${err.message}`));
  server.listen(0, '127.0.0.1', () => console.log(`LISTENING ${server.address().port}`));
  setTimeout(() => fail('server: overall timeout'), 60000).unref();
} else if (role === 'client') {
  let session;
  let pendingSession;
  const one = (i) => {
    if (i >= count) { console.log('DONE'); return; }
    const options = common();
    options.host = opts.host || '127.0.0.1';
    options.port = parseInt(opts.port, 10);
    options.servername = opts.servername || 'localhost';
    if (opts.resume && session) options.session = session;
    pendingSession = undefined;
    const sock = tls.connect(options, () => {
      report(sock);
      const data = Buffer.alloc(echo, 0);
      for (let j = 0; j < echo; j++) data[j] = 97 + (j % 26);
      sock.write(data);
      readN(sock, echo, (got) => {
        if (!got.subarray(0, echo).equals(data)) fail('echo differs');
        sock.end();
      });
    });
    sock.setTimeout(TIMEOUT_MS, () => fail('client socket timeout'));
    sock.on('session', (s) => { pendingSession = s; });
    sock.on('error', fail);
    sock.on('close', () => {
      console.log('CLOSED');
      if (pendingSession) session = pendingSession;
      one(i + 1);
    });
  };
  one(0);
  setTimeout(() => fail('client: overall timeout'), 60000).unref();
} else {
  fail('first argument: server or client');
}
