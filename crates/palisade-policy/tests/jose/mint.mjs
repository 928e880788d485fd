// Mints a CSRF token with jose: node mint.mjs <secret> <sessionId> <iat> <exp>
// The secret comes from the environment (PALISADE_CSRF_SECRET) so it never shows in `ps`.
import { SignJWT } from "jose";

const [sessionId, iat, exp] = process.argv.slice(2);
const secret = new TextEncoder().encode(process.env.PALISADE_CSRF_SECRET ?? "");
const token = await new SignJWT({ sessionId })
  .setProtectedHeader({ alg: "HS256", typ: "JWT" })
  .setIssuedAt(Number(iat))
  .setExpirationTime(Number(exp))
  .sign(secret);
process.stdout.write(token);
