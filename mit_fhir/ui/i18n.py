"""A Questionnaire in another language, built from its FHIR translation extensions.

LHC-Forms renders `text` and `display` as they are, so the Italian form is made on the server:
every string that carries a translation extension for the language is replaced by it, and
`language` says what the form now is. Strings without a translation stay as they are.
"""

from __future__ import annotations

import copy
from typing import Any

TRANSLATION = "http://hl7.org/fhir/StructureDefinition/translation"
LANGUAGES = {"en": "English", "it": "Italiano"}
# A language's name said in another language: the notice of a form shown in its own language.
NAMES_IN = {"it": {"en": "inglese", "it": "italiano"}}
# The pages' own words; `renderer` are LHC-Forms' own strings, which it offers no locale for
# (40.x keeps them in a module-private table), so form.js replaces them after rendering.
WORDS: dict[str, dict[str, Any]] = {
    "en": {"save": "Save draft", "submit": "Submit", "scores": "Scores recorded",
           "copyright": "Copyright and licence", "outcomes": "See the outcomes chart",
           "skip": "Skip to content", "forms": "Forms", "outcomes_nav": "Outcomes",
           "patient": "Patient", "sign_out": "Sign out", "demo": "Development mode: demo patient",
           "forms_for": "Forms for patient", "score": "Score", "value": "Value",
           "change": "Change", "reliable": "Reliable", "yes": "yes", "no": "no",
           "better": "better", "worse": "worse", "no_change": "no change computed",
           "caption": "Scores computed by the service, with change since the first assessment",
           "alerts": "Needs attention now", "critical": "Urgent", "warning": "Warning",
           "loading": "Loading the form…", "ready": "Ready.",
           "restored": "Draft restored (saved {when}).", "saved": "Draft saved at {when}.",
           "not_saved": "The draft was not saved: {why}",
           "draft_lost": "The draft was not saved: the connection was lost. Check the "
                         "connection and press Save draft again.",
           "submitting": "Submitting…",
           "submitted": "Submitted: {n} scores recorded.", "not_submitted": "Not submitted: {why}",
           "lost": "Not submitted: the connection was lost before the service answered, so the "
                   "page cannot tell whether the answers arrived. Check the connection and "
                   "press Submit again: the same answers are never recorded twice.",
           "load_failed": "The form could not be loaded. Check the connection and reload "
                          "the page.",
           "licensed_title": "The wording of this instrument is not loaded",
           "licensed": "{n} questions show a placeholder (“item 1”, “item 2” "
                       "…) instead of the instrument's wording, because the wording is "
                       "licensed and is not shipped with mit-fhir. Do not give this form to a "
                       "patient until the site has loaded the licensed wording. An "
                       "administrator prints the list of questions to fill in, then loads "
                       "the completed file:",
           "alert_help": "If you are having thoughts of harming yourself, tell the clinician "
                         "with you now, or call your local emergency number.",
           "no_translation": "This form has no version in that language: it is shown in {shown}.",
           # English keeps LHC-Forms' own month-first date field.
           "date_day_first": False, "date_placeholder": "DD/MM/YYYY",
           "date_invalid": "“{text}” is not a date: write it as DD/MM/YYYY.",
           "date_fix": "Check the dates marked on the form.",
           "renderer": {}},
    "it": {"save": "Salva bozza", "submit": "Invia", "scores": "Punteggi registrati",
           "copyright": "Copyright e licenza", "outcomes": "Vedi il grafico degli esiti",
           "skip": "Vai al contenuto", "forms": "Questionari", "outcomes_nav": "Esiti",
           "patient": "Paziente", "sign_out": "Esci",
           "demo": "Modalità di sviluppo: paziente dimostrativo",
           "forms_for": "Questionari per il paziente", "score": "Punteggio", "value": "Valore",
           "change": "Cambiamento", "reliable": "Affidabile", "yes": "sì", "no": "no",
           "better": "migliorato", "worse": "peggiorato", "no_change": "nessun confronto",
           "caption": "Punteggi calcolati dal servizio, con il cambiamento dalla prima "
                      "valutazione",
           "alerts": "Richiede attenzione subito", "critical": "Urgente", "warning": "Attenzione",
           "loading": "Caricamento del questionario…", "ready": "Pronto.",
           "restored": "Bozza ripristinata (salvata {when}).",
           "saved": "Bozza salvata alle {when}.",
           "not_saved": "La bozza non è stata salvata: {why}",
           "draft_lost": "La bozza non è stata salvata: la connessione si è interrotta. "
                         "Controllare la connessione e premere di nuovo Salva bozza.",
           "submitting": "Invio in corso…",
           "submitted": "Inviato: {n} punteggi registrati.", "not_submitted": "Non inviato: {why}",
           "lost": "Non inviato: la connessione si è interrotta prima della risposta del "
                   "servizio, quindi la pagina non sa se le risposte sono arrivate. Controllare "
                   "la connessione e premere di nuovo Invia: le stesse risposte non vengono "
                   "mai registrate due volte.",
           "load_failed": "Non è stato possibile caricare il questionario. Controllare la "
                          "connessione e ricaricare la pagina.",
           "licensed_title": "Il testo di questo strumento non è caricato",
           "licensed": "{n} domande mostrano un segnaposto (“item 1”, “item 2” "
                       "…) al posto del testo dello strumento, perché il testo è "
                       "protetto da licenza e non è distribuito con mit-fhir. Non "
                       "somministrare questo questionario a un paziente finché il centro "
                       "non ha caricato il testo autorizzato. Un amministratore stampa "
                       "l'elenco delle domande da compilare, poi carica il file completato:",
           "alert_help": "Se ha pensieri di farsi del male, lo dica subito al clinico che è "
                         "con lei, oppure chiami il numero di emergenza locale.",
           "no_translation": "Questo questionario non ha una versione in italiano: è "
                             "mostrato in {shown}.",
           # LHC-Forms' own date field reads month first; Italian writes the day first.
           "date_day_first": True, "date_placeholder": "GG/MM/AAAA",
           "date_invalid": "«{text}» non è una data: scriverla come GG/MM/AAAA.",
           "date_fix": "Controllare le date segnate nel questionario.",
           "renderer": {"Type a value": "Scrivere un valore", "Type a number": "Scrivere un numero",
                        "Select one": "Sceglierne uno",
                        "Select one or more": "Sceglierne uno o più",
                        "Search for a value": "Cercare un valore",
                        "Search for values": "Cercare valori",
                        "Select one or type a value": "Sceglierne uno o scrivere un valore",
                        "Select one or more or type a value":
                            "Sceglierne uno o più o scrivere un valore",
                        "MM/DD/YYYY": "MM/GG/AAAA", "MM/DD/YYYY HH:MM:SS": "MM/GG/AAAA HH:MM:SS",
                        "Yes": "Sì", "No": "No", "Not Answered": "Nessuna risposta",
                        "Add another": "Aggiungi un altro",
                        "Now": "Adesso", "Today": "Oggi", "OK": "OK",
                        "Instruction": "Istruzioni"}},
}


def words(lang: str) -> dict[str, Any]:
    """The pages' words in `lang` (English where the language has none)."""
    return WORDS.get(lang, WORDS["en"])


def translation(element: Any, lang: str) -> str | None:
    """The `content` of the translation extension for `lang` on a primitive's _element."""
    if not isinstance(element, dict):
        return None
    for ext in element.get("extension", []):
        if ext.get("url") != TRANSLATION:
            continue
        parts = {e.get("url"): e for e in ext.get("extension", [])}
        if parts.get("lang", {}).get("valueCode") == lang:
            content = parts.get("content", {}).get("valueString")
            if isinstance(content, str):
                return content
    return None


def _translate(node: Any, lang: str) -> int:
    count = 0
    if isinstance(node, dict):
        for key in [k for k in node if k.startswith("_") and k[1:] in node]:
            text = translation(node[key], lang)
            if text is not None and isinstance(node[key[1:]], str):
                node[key[1:]] = text
                count += 1
        for value in node.values():
            count += _translate(value, lang)
    elif isinstance(node, list):
        for value in node:
            count += _translate(value, lang)
    return count


def languages(questionnaire: dict[str, Any]) -> list[str]:
    """The form's own language and those its translations cover (at least its title)."""
    own = questionnaire.get("language", "en")
    found = [own]
    for lang in LANGUAGES:
        if lang != own and translation(questionnaire.get("_title"), lang) is not None:
            found.append(lang)
    return found


def translated(questionnaire: dict[str, Any], lang: str) -> dict[str, Any]:
    """The Questionnaire in `lang` (a copy), or as it is when that is its own language."""
    if lang == questionnaire.get("language", "en"):
        return questionnaire
    out = copy.deepcopy(questionnaire)
    _translate(out, lang)
    out["language"] = lang
    return out


# The patient's own pages (ui/patient.py): plain words, no scores, no clinical jargon.
PATIENT_WORDS: dict[str, dict[str, str]] = {
    "en": {"my_title": "Your forms", "my_intro": "These are the forms your care team asked "
           "you to fill in. Your answers go to your care team.",
           "my_none": "There are no forms for you to fill in now. Thank you.",
           "due": "To fill in by {date}", "overdue": "Overdue: it was due by {date}",
           "no_due": "No date set", "started": "Started", "fill": "Fill in",
           "my_nav": "Your forms", "finished": "I have finished",
           "handover_intro": "Your clinician handed you this device to fill in these forms.",
           "give_back_title": "Thank you", "give_back": "You have finished. Please give the "
           "device back to your clinician.",
           "thanks_title": "Thank you", "thanks": "Your answers were sent to your care team.",
           "back_to_list": "Back to your forms",
           "safety_title": "Please read this now",
           "safety": "Some of your answers tell us you may be going through a very hard time. "
           "You do not have to face it alone. If you think you might hurt yourself or you are "
           "in danger now, call the emergency number: 112 in Italy and the EU (or your local "
           "emergency number), or go to the nearest emergency department.",
           "safety_contact": "You can also call your care team, or a crisis line: Telefono "
           "Amico 02 2327 2327 (Italy), Samaritans 116 123 (UK and Ireland).",
           "patient_scores": "Your scores", "patient_scores_note": "The numbers your answers "
           "add up to. Your care team will talk them through with you.",
           "refused_title": "This page cannot be shown"},
    "it": {"my_title": "I tuoi questionari", "my_intro": "Questi sono i questionari che la tua "
           "équipe di cura ti ha chiesto di compilare. Le risposte vanno alla tua équipe.",
           "my_none": "Non ci sono questionari da compilare adesso. Grazie.",
           "due": "Da compilare entro il {date}", "overdue": "In ritardo: era da compilare "
           "entro il {date}", "no_due": "Nessuna data", "started": "Iniziato",
           "fill": "Compila", "my_nav": "I tuoi questionari", "finished": "Ho finito",
           "handover_intro": "Il tuo clinico ti ha dato questo dispositivo per compilare "
           "questi questionari.",
           "give_back_title": "Grazie", "give_back": "Hai finito. Per favore restituisci il "
           "dispositivo al tuo clinico.",
           "thanks_title": "Grazie", "thanks": "Le tue risposte sono state inviate alla tua "
           "équipe di cura.", "back_to_list": "Torna ai tuoi questionari",
           "safety_title": "Per favore leggi subito",
           "safety": "Alcune tue risposte ci dicono che forse stai attraversando un momento "
           "molto difficile. Non devi affrontarlo da solo. Se pensi di poterti fare del male o "
           "sei in pericolo adesso, chiama il numero di emergenza 112 o vai al pronto soccorso "
           "più vicino.",
           "safety_contact": "Puoi anche chiamare la tua équipe di cura, o Telefono Amico "
           "02 2327 2327.",
           "patient_scores": "I tuoi punteggi", "patient_scores_note": "I numeri a cui "
           "arrivano le tue risposte. La tua équipe ne parlerà con te.",
           "refused_title": "Questa pagina non può essere mostrata"},
}
for _lang, _words in PATIENT_WORDS.items():
    WORDS[_lang].update(_words)
