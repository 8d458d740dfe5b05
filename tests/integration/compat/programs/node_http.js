// node_http.js: an HTTP server and client on Node.js's own http module (libuv, epoll), for the
// compat row node. Each request uploads one file and downloads another; both ends hash what
// they read.
//   node node_http.js server PORT_FILE DOWNLOAD_FILE
//       Listens on 127.0.0.1 (port written to PORT_FILE); for each request prints
//       `received N bytes, sha256 HEX` and answers with DOWNLOAD_FILE, the upload's SHA-256 in
//       the header x-received-sha256. Runs until stopped.
//   node node_http.js client PORT UPLOAD_FILE DOWNLOAD_FILE REQUESTS
//       REQUESTS POSTs of UPLOAD_FILE at once over a keep-alive agent of 2 sockets; each answer's
//       body must hash to DOWNLOAD_FILE's SHA-256 and its header to UPLOAD_FILE's. Prints
//       `verified K of REQUESTS, B bytes each way`; exits 1 unless K = REQUESTS.
'use strict';
const crypto = require('crypto');
const fs = require('fs');
const http = require('http');

const sha256 = (file) => crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex');

// hashStream(stream, done): done(bytes, hex) at the stream's end.
function hashStream(stream, done) {
    const hash = crypto.createHash('sha256');
    let bytes = 0;
    stream.on('data', (chunk) => {
        hash.update(chunk);
        bytes += chunk.length;
    });
    stream.on('end', () => done(bytes, hash.digest('hex')));
}

function server(portFile, download) {
    const size = fs.statSync(download).size;
    const srv = http.createServer((req, res) => hashStream(req, (bytes, hex) => {
        console.log(`received ${bytes} bytes, sha256 ${hex}`);
        res.writeHead(200, {'content-type': 'application/octet-stream', 'content-length': size,
                            'x-received-sha256': hex});
        fs.createReadStream(download).pipe(res);
    }));
    srv.listen(0, '127.0.0.1', () => {
        fs.writeFileSync(`${portFile}.tmp`, `${srv.address().port}\n`);
        fs.renameSync(`${portFile}.tmp`, portFile);
    });
}

function client(port, upload, download, requests) {
    const agent = new http.Agent({keepAlive: true, maxSockets: 2});
    const size = fs.statSync(upload).size;
    const wantUp = sha256(upload);
    const wantDown = sha256(download);
    let verified = 0;
    const one = (i) => new Promise((resolve, reject) => {
        const req = http.request({host: '127.0.0.1', port, method: 'POST', path: `/${i}`, agent,
                                  headers: {'content-length': size}}, (res) => {
            res.on('error', reject);
            hashStream(res, (bytes, hex) => {
                const up = res.headers['x-received-sha256'];
                if (res.statusCode === 200 && hex === wantDown && up === wantUp) verified++;
                else console.log(`request ${i}: status ${res.statusCode}, ${bytes} bytes, sha256 ${hex}, upload ${up}`);
                resolve();
            });
        });
        req.on('error', reject);
        fs.createReadStream(upload).pipe(req);
    });
    Promise.all(Array.from({length: requests}, (_, i) => one(i))).then(() => {
        console.log(`verified ${verified} of ${requests}, ${size} bytes each way`);
        agent.destroy();
        process.exitCode = verified === requests ? 0 : 1;
    }, (err) => {
        console.log(`error: ${err.message}`);
        process.exit(1);
    });
}

const [mode, ...args] = process.argv.slice(2);
if (mode === 'server' && args.length === 2) server(...args);
else if (mode === 'client' && args.length === 4) client(args[0], args[1], args[2], Number(args[3]));
else {
    console.error('usage: node_http.js server PORT_FILE DOWNLOAD | client PORT UPLOAD DOWNLOAD REQUESTS');
    process.exit(2);
}
