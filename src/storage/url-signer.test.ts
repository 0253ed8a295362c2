import assert from "node:assert/strict";
import { test } from "node:test";
import { createUrlSigner } from "./url-signer.ts";

const secret = new Uint8Array(32).fill(7);

/** The base64url alphabet; a 32-byte MAC spelled in 43 characters leaves the last one's low 2 bits unused. */
const ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

test("a signed URL has exactly one spelling: the unused bits of the MAC's last character must be zero", () => {
  const signer = createUrlSigner(secret, () => 1_000_000);
  const { token } = signer.sign("img1", 60);
  assert.equal(signer.verify(token)?.id, "img1");
  const last = ALPHABET.indexOf(token.at(-1) ?? "");
  assert.equal(last & 3, 0, "the signer writes the canonical spelling");
  const others = [1, 2, 3].map((low) => `${token.slice(0, -1)}${ALPHABET[last | low]}`);
  for (const t of others) {
    assert.deepEqual(Buffer.from(t.split(".")[2], "base64url"), Buffer.from(token.split(".")[2], "base64url"), "same bytes");
    assert.equal(signer.verify(t), undefined, `${t} is a second spelling of the same token`);
  }
});

test("verify reports when the token expires; an expired token opens nothing", () => {
  let now = 1_000_000;
  const signer = createUrlSigner(secret, () => now);
  const { token, expiresAt } = signer.sign("img1", 60);
  assert.deepEqual(signer.verify(token), { id: "img1", expiresAt });
  assert.equal(expiresAt, 1_000_000 + 60_000);
  now = expiresAt;
  assert.equal(signer.verify(token), undefined);
});

test("leading zeros in the expiry, padding or a standard-alphabet character do not verify", () => {
  const signer = createUrlSigner(secret, () => 1_000_000);
  const { token } = signer.sign("img1", 60);
  const [id, exp, mac] = token.split(".");
  assert.equal(signer.verify(`${id}.0${exp}.${mac}`), undefined);
  assert.equal(signer.verify(`${token}=`), undefined);
  assert.equal(signer.verify(`${id}.${exp}.${mac.slice(0, 10)}+${mac.slice(11)}`), undefined);
});

test("a token ends in its image's extension; the same token without one (URLs handed out before) still verifies", () => {
  const signer = createUrlSigner(secret, () => 1_000_000);
  const png = signer.sign("img1", 60, "png");
  assert.match(png.token, /\.png$/);
  assert.deepEqual(signer.verify(png.token), { id: "img1", expiresAt: png.expiresAt, format: "png" });
  const bare = png.token.slice(0, -".png".length);
  assert.deepEqual(signer.verify(bare), { id: "img1", expiresAt: png.expiresAt });
  assert.match(signer.sign("img1", 60, "jpeg").token, /\.jpg$/);
  assert.equal(signer.verify(`${bare}.jpeg`)?.format, "jpeg");
  assert.equal(signer.verify(signer.sign("img1", 60, "webp").token)?.format, "webp");
  for (const t of [`${bare}.gif`, `${bare}.png.png`, `${bare}.`, `${bare}.PNG`]) assert.equal(signer.verify(t), undefined, t);
  assert.throws(() => signer.sign("img1", 60, "gif"), /no file extension/);
});
