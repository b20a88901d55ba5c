// One HTTPS request through an HTTP proxy with Node's own modules only:
// CONNECT by hand (http.request method CONNECT), tls.connect over the
// tunnel socket, then http.request over the TLS socket (what
// https-proxy-agent does).  Trust comes from NODE_EXTRA_CA_CERTS unless
// spec.ca names a file.
//
//   node node_client.js '{"proxy":"127.0.0.1:8081",
//       "url":"https://api.anthropic.com/echo", "method":"POST",
//       "upload":"/tmp/f", "chunked":false, "out":"/tmp/o",
//       "headers":{}, "ca":null}'
//
// Prints one JSON line: {status, headers, bytes, sha256, error,
// peerSubject, peerIssuer, alpn}.
'use strict';
const crypto = require('crypto');
const fs = require('fs');
const http = require('http');
const tls = require('tls');

const spec = JSON.parse(process.argv[2]);
const [proxyHost, proxyPort] = spec.proxy.split(':');
const url = new URL(spec.url);
const port = Number(url.port || 443);
const target = url.hostname + ':' + port;

function done(res) {
  process.stdout.write(JSON.stringify(res) + '\n');
  process.exit(res.error ? 1 : 0);
}

const connectReq = http.request({
  host: proxyHost, port: Number(proxyPort), method: 'CONNECT',
  path: target, headers: { Host: target },
});
connectReq.on('error', (e) => done({ error: 'proxy: ' + e.message }));
connectReq.on('connect', (res, socket) => {
  if (res.statusCode !== 200) {
    done({ error: 'CONNECT status ' + res.statusCode });
    return;
  }
  const opts = { socket, servername: url.hostname,
                 ALPNProtocols: ['http/1.1'] };
  if (spec.ca) opts.ca = fs.readFileSync(spec.ca);
  const tlsSock = tls.connect(opts, () => {
    const cert = tlsSock.getPeerCertificate();
    const info = { peerSubject: cert.subject, peerIssuer: cert.issuer,
                   alpn: tlsSock.alpnProtocol };
    const headers = Object.assign({}, spec.headers);
    let size = null;
    if (spec.upload && !spec.chunked) {
      size = fs.statSync(spec.upload).size;
      headers['Content-Length'] = String(size);
    }
    const req = http.request({
      host: url.hostname, port, method: spec.method,
      path: url.pathname + url.search, headers,
      createConnection: () => tlsSock,
    }, (resp) => {
      const h = crypto.createHash('sha256');
      let n = 0;
      const out = spec.out ? fs.createWriteStream(spec.out) : null;
      resp.on('data', (c) => { h.update(c); n += c.length;
                               if (out) out.write(c); });
      resp.on('aborted', () => done(Object.assign(info, {
        status: resp.statusCode, bytes: n, error: 'aborted' })));
      resp.on('error', (e) => done(Object.assign(info, {
        status: resp.statusCode, bytes: n, error: e.message })));
      resp.on('end', () => {
        const fin = () => done(Object.assign(info, {
          status: resp.statusCode, headers: resp.headers, bytes: n,
          sha256: h.digest('hex'), error: null }));
        if (out) out.end(fin); else fin();
      });
    });
    req.on('error', (e) => done(Object.assign(info, { error: e.message })));
    if (spec.upload) {
      fs.createReadStream(spec.upload).pipe(req);
    } else {
      req.end();
    }
  });
  tlsSock.on('error', (e) => done({ error: 'tls: ' + e.message }));
});
connectReq.end();
