(function () {
  "use strict";
  var form = document.getElementById("answer");
  var status = document.getElementById("status");
  var token = form.elements.token.value;
  var bits = parseInt(form.getAttribute("data-difficulty"), 10);

  function say(text) {
    status.textContent = text;
  }

  // The clearance is a cookie: without cookies the check would start again on every page.
  function cookiesWork() {
    if (!navigator.cookieEnabled) {
      return false;
    }
    var probe = "palisade_cookie_probe=1";
    document.cookie = probe + "; path=/; SameSite=Lax";
    var kept = document.cookie.indexOf(probe) !== -1;
    document.cookie = probe + "; path=/; max-age=0; SameSite=Lax";
    return kept;
  }

  function zeroBits(digest) {
    var count = 0;
    for (var i = 0; i < digest.length; i++) {
      if (digest[i] === 0) {
        count += 8;
        continue;
      }
      return count + Math.clz32(digest[i]) - 24;
    }
    return count;
  }

  // SHA-256 (FIPS 180-4) for pages served over plain http, where browsers hide WebCrypto.
  var ROUND = new Uint32Array([
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2
  ]);

  function rotr(x, n) {
    return (x >>> n) | (x << (32 - n));
  }

  function sha256(message) {
    var h = new Uint32Array([
      0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19
    ]);
    var length = ((message.length + 9 + 63) >> 6) << 6;
    var padded = new Uint8Array(length);
    padded.set(message);
    padded[message.length] = 0x80;
    var view = new DataView(padded.buffer);
    view.setUint32(length - 8, Math.floor(message.length / 0x20000000));
    view.setUint32(length - 4, (message.length * 8) >>> 0);
    var w = new Uint32Array(64);
    for (var block = 0; block < length; block += 64) {
      for (var t = 0; t < 16; t++) {
        w[t] = view.getUint32(block + t * 4);
      }
      for (t = 16; t < 64; t++) {
        var s0 = rotr(w[t - 15], 7) ^ rotr(w[t - 15], 18) ^ (w[t - 15] >>> 3);
        var s1 = rotr(w[t - 2], 17) ^ rotr(w[t - 2], 19) ^ (w[t - 2] >>> 10);
        w[t] = (w[t - 16] + s0 + w[t - 7] + s1) | 0;
      }
      var a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], k = h[7];
      for (t = 0; t < 64; t++) {
        var sum1 = rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25);
        var choose = (e & f) ^ (~e & g);
        var first = (k + sum1 + choose + ROUND[t] + w[t]) | 0;
        var sum0 = rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22);
        var majority = (a & b) ^ (a & c) ^ (b & c);
        var second = (sum0 + majority) | 0;
        k = g; g = f; f = e; e = (d + first) | 0;
        d = c; c = b; b = a; a = (first + second) | 0;
      }
      h[0] += a; h[1] += b; h[2] += c; h[3] += d;
      h[4] += e; h[5] += f; h[6] += g; h[7] += k;
    }
    var out = new Uint8Array(32);
    var outView = new DataView(out.buffer);
    for (var i = 0; i < 8; i++) {
      outView.setUint32(i * 4, h[i]);
    }
    return out;
  }

  var encoder = new TextEncoder();
  var subtle = window.crypto && window.crypto.subtle;

  // Hashes a batch of candidate nonces; WebCrypto when the browser offers it.
  function digests(start, count) {
    var inputs = [];
    for (var i = 0; i < count; i++) {
      inputs.push(encoder.encode(token + ":" + (start + i)));
    }
    if (!subtle) {
      return Promise.resolve(inputs.map(sha256));
    }
    return Promise.all(inputs.map(function (input) {
      return subtle.digest("SHA-256", input).then(function (d) { return new Uint8Array(d); });
    }));
  }

  async function search() {
    var batch = 512;
    for (var start = 0; ; start += batch) {
      var list = await digests(start, batch);
      for (var i = 0; i < list.length; i++) {
        if (zeroBits(list[i]) >= bits) {
          return String(start + i);
        }
      }
      if (start > 0 && (start / batch) % 64 === 0) {
        say("Still working… (" + Math.round(start / 1000) + " thousand tries so far)");
      }
    }
  }

  window.palisadeChallenge = { sha256: sha256, zeroBits: zeroBits };

  if (!cookiesWork()) {
    document.getElementById("cookies").hidden = false;
    say("Your browser blocks cookies for this site, so the check cannot be completed.");
    return;
  }
  say("Working… this usually takes a second or two.");
  search().then(function (nonce) {
    form.elements.nonce.value = nonce;
    say("Done. Taking you to the page you asked for…");
    form.submit();
  }, function () {
    say("The check could not run in this browser. Please reload the page to try again.");
  });
})();
