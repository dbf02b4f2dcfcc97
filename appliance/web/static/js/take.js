// "Take it with you": the one-time link from the kiosk's QR code. The token is in the address's
// #fragment (never sent in a request line or a Referer); it is spent by the one fetch below and
// the picture is kept in this page's memory, so it can be saved (and a video played) offline.

const text = JSON.parse(document.getElementById("booth-data").textContent);
const $ = (id) => document.getElementById(id);

async function take() {
  const wanted = new URLSearchParams(location.hash.slice(1));
  history.replaceState(null, "", location.pathname); // the token is spent: off the address bar
  const job = wanted.get("job");
  const output = wanted.get("output");
  const token = wanted.get("t");
  if (!job || !output || !token) throw new Error("token_invalid");
  const url = `/api/jobs/${encodeURIComponent(job)}/outputs/${encodeURIComponent(output)}` +
    `?download=${encodeURIComponent(token)}`;
  const response = await fetch(url, { cache: "no-store", referrerPolicy: "no-referrer" });
  if (!response.ok) {
    const answer = await response.json().catch(() => ({}));
    throw new Error(answer.error || "generic");
  }
  const blob = await response.blob();
  const local = URL.createObjectURL(blob);
  let media;
  if (blob.type.startsWith("video/")) {
    media = document.createElement("video");
    Object.assign(media, { src: local, controls: true, playsInline: true, loop: true });
  } else {
    media = document.createElement("img");
    media.src = local;
    media.alt = output;
  }
  media.className = "media";
  $("take-media").replaceChildren(media);
  const save = $("take-save");
  save.href = local;
  save.download = `ephemera-${output}`;
  save.hidden = false;
  $("take-status").textContent = "";
}

take().catch((error) => {
  $("take-status").textContent = "";
  const code = error?.message;
  const node = $("take-error");
  node.textContent = text.errors[code] || text.errors.token_invalid;
  node.hidden = false;
});
