"""The text the screens' script shows, and a friendly message for each error and gate code.

Why here and not in the script: every string goes through the one catalogue (``i18n``), so the
page hands the script its text already translated (a JSON block, not code). Placeholders are
``{name}``; the script fills them in.
"""

from __future__ import annotations

from appliance.web.i18n import N_, Language

SCRIPT_TEXT = {
    "photo_of": N_("Photo {n} of {total}"),
    "person_turn": N_("Person {n}, your turn"),
    "photo_in": N_("Photo in {n}"),
    "smile": N_("Smile!"),
    "checking": N_("Checking your photo…"),
    "uploading": N_("Uploading photo {n} of {total}: {percent}%"),
    "stage_queued": N_("Waiting for the booth"),
    "stage_running": N_("Making your picture"),
    "progress": N_("{stage}: {percent}%"),
    "output_counter": N_("{n} of {total}"),
    "still_rendering": N_("Still making this one…"),
    "waiting_phone": N_("Waiting for your phone…"),
    "phone_joined": N_("Your phone is connected. Choose your photos on it."),
    "idle_warning": N_("Are you still there? Everything is wiped in {n} seconds."),
    "receipt_counts": N_("Photos wiped: {photos}. Results wiped: {results}. Keys wiped: {keys}. "
                         "At {time}."),
    "receipt_id": N_("Receipt {id}"),
    "wiped_elsewhere": N_("Everything was wiped from the other screen."),
    "failsafe": N_("Something went wrong, so we wiped everything. Please start again."),
    "take_hint": N_("Scan to download this picture. The link works once, for {minutes} "
                    "minutes."),
    "sent_to_booth": N_("Your photos are on the booth. You can follow along here."),
    "choose_photo_n": N_("Choose photo {n}"),
    "photos_choice": N_("Photos"),
    "photo_ready": N_("Photo {n} is ready."),
    "camera_reconnecting": N_("Camera reconnecting…"),
    "printing": N_("Printing…"),
    "printed": N_("Your print is on its way. Pick it up at the printer."),
    "prints_left": N_("Prints left: {n}"),
    "printer_paper": N_("The printer is out of paper. Please tell the staff."),
    "printer_ink": N_("The printer is out of ink. Please tell the staff."),
    "printer_jam": N_("The printer has a paper jam. Please tell the staff."),
    "printer_cover": N_("The printer's cover is open. Please tell the staff."),
    "printer_offline": N_("The printer is offline. Please tell the staff."),
}

ERROR_TEXT = {
    "no_face": N_("We couldn't find a face. Step into the picture and look at the camera."),
    "too_many_faces": N_("We see too many faces. Only the people taking part should be in the "
                         "picture."),
    "too_few_faces": N_("We need more faces in this photo. Everyone taking part should be in "
                        "it."),
    "face_too_small": N_("Come a little closer to the camera."),
    "face_cut_off": N_("Your face is cut off at the edge. Move to the middle."),
    "blurry": N_("The photo is blurry. Hold still for a moment."),
    "extreme_pose": N_("Please look straight at the camera."),
    "eyes_closed": N_("Your eyes look closed. Keep them open for the photo."),
    "not_an_image": N_("This file isn't a photo we can use. Choose a JPEG, PNG or WebP photo."),
    "too_many_bytes": N_("This photo is too large. Choose a smaller one."),
    "busy": N_("The booth is busy. Please try again in a moment."),
    "models_unavailable": N_("The booth isn't ready yet. Please ask the staff."),
    "handoff_expired": N_("This QR code has expired or was already used. Scan the one on the "
                          "booth's screen."),
    "token_invalid": N_("This link no longer works: everything was wiped."),
    "camera_unavailable": N_("The camera isn't available. Use your phone instead, or ask the "
                             "staff."),
    "consent_required": N_("Please confirm that everyone agrees and is an adult."),
    "print_limit": N_("You have printed as many pictures as this booth allows."),
    "printer_not_ready": N_("The printer isn't ready. Please tell the staff."),
    "not_printable": N_("Only pictures can be printed, not videos."),
    "generic": N_("Something went wrong. Please try again."),
}

# Codes that share a message with another one.
ERROR_ALIASES = {
    "unsupported_format": "not_an_image", "unsupported_mode": "not_an_image",
    "truncated_image": "not_an_image", "truncated_upload": "not_an_image",
    "empty_upload": "not_an_image", "too_many_pixels": "too_many_bytes",
    "decompression_bomb": "too_many_bytes", "queue_full": "busy", "store_full": "busy",
    "photo_not_found": "token_invalid", "job_not_found": "token_invalid",
}

# The effects' own titles and summaries are English in their modules; the catalogues may carry
# translations of them like any other message (an effect without one shows its English text).
EFFECT_TEXT = (
    N_("Face check"),
    N_("Finds each face and draws its box, keypoints and mesh: the booth's self-test."),
    N_("Faces found"),
    N_("Studio headshot"),
    N_("A professional 4:5 portrait in several studio styles: framed, relit, retouched, on a "
       "new backdrop."),
    N_("Baby predictor"),
    N_("Two parents, one baby: both faces morphed into a baby portrait."),
    N_("Your baby"),
    N_("Kiss"),
    N_("A short video: the two of you turn to each other, close your eyes and kiss."),
    N_("Kiss video"),
    N_("Poster"),
    N_("Classic monochrome"),
    N_("Corporate grey"),
    N_("Outdoor bokeh"),
    N_("Warm studio"),
)


def script_text(lang: Language) -> dict[str, dict[str, str]]:
    """Everything the script may show, translated: ``{"text": {...}, "errors": {...}}``."""
    errors = {code: lang.gettext(message) for code, message in ERROR_TEXT.items()}
    errors.update({code: errors[target] for code, target in ERROR_ALIASES.items()})
    return {"text": {key: lang.gettext(message) for key, message in SCRIPT_TEXT.items()},
            "errors": errors}
