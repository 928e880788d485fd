// Verifies a CSRF token with jose: node verify.mjs <token> <nowSeconds>
// Prints the payload as JSON on success; exits 1 with the jose error code otherwise.
import { jwtVerify } from "jose";

const [token, now] = process.argv.slice(2);
const secret = new TextEncoder().encode(process.env.PALISADE_CSRF_SECRET ?? "");
try {
  const { payload, protectedHeader } = await jwtVerify(token, secret, {
    algorithms: ["HS256"],
    requiredClaims: ["exp", "iat", "sessionId"],
    currentDate: new Date(Number(now) * 1000),
  });
  process.stdout.write(JSON.stringify({ header: protectedHeader, payload }));
} catch (err) {
  process.stderr.write(`${err.code ?? "ERR"}: ${err.message}\n`);
  process.exit(1);
}
