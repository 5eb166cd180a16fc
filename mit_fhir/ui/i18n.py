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


# ---- The clinician's assignments page (ui/assign.py, tasks.html, tasks.js; issue 14) ----
ASSIGN_WORDS: dict[str, dict[str, Any]] = {
    "en": {
        "tasks_nav": "Assigned forms", "tasks_for": "Assigned forms for patient",
        "assign_link": "Assign forms for the patient to fill, once or on a schedule",
        "assign_title": "Assign forms", "assign_forms": "Forms",
        "self_report": "Filled by the patient", "clinician_rated": "Rated by the clinician",
        "when": "When", "once": "Once, by a due date", "repeat": "On a schedule",
        "due_by": "Due by", "default_window": "Suggested: {n} days from today.",
        "every": "Every", "unit_label": "Unit", "unit_wk": "weeks", "unit_mo": "months",
        "from": "First on", "ends": "Ends", "ends_on": "On a date", "ends_after": "After a "
        "number of times", "end_date": "Last date", "times": "Number of times",
        "ends_never": "Not set: until the schedule is stopped", "assign": "Assign",
        "tasks_heading": "Forms to fill", "col_select": "Hand over", "col_form": "Form",
        "col_status": "Status", "col_due": "Due", "col_owner": "Filled by",
        "col_done": "Completed or closed", "col_action": "Action",
        "owner_patient": "Patient", "owner_clinician": "Clinician",
        "task_overdue": "Overdue: was due {date}", "from_schedule": "from a schedule",
        "cancel": "Cancel", "cancel_label": "Cancel {form}", "select_label": "Hand {form} "
        "to the patient", "no_tasks": "No forms assigned yet.",
        "schedules_heading": "Schedules", "col_forms": "Forms", "col_cadence": "How often",
        "col_from": "First on", "col_until": "Until", "col_next": "Next", "stop": "Stop",
        "stop_label": "Stop the schedule of {forms}", "no_schedules": "No schedules.",
        "until_date": "until {date}", "until_count": "{n} times", "until_none": "no end set",
        "activity_cancelled": "{form} (stopped)",
        "handover_title": "Fill in now, on this device",
        "handover": "Hand to patient (you will sign in again to come back)",
        "handover_help": "Tick the patient's open forms in the list above, then hand the "
                         "device over: it shows only those forms, locked, with no way back "
                         "to the chart. To come back to this page you will have to sign in "
                         "again from the EHR.",
        "handover_none": "Tick at least one open form that the patient fills.",
        "handing": "Handing over…",
        "loading_tasks": "Loading…", "working": "Saving…",
        "assigned": "Assigned: {forms}, due by {date}.",
        "scheduled": "Schedule saved: {forms}, {cadence}.",
        "cancelled": "Cancelled: {form}.", "stopped": "Schedule stopped: {forms}.",
        "not_done": "Not done: {why}",
        "lost_connection": "Not done: the connection was lost. Reload the page to see what "
                           "was saved, then try again.",
        "no_requester": "The EHR did not say who is signed in (fhirUser): assigning forms "
                        "needs it. Open the app from the EHR again.",
        "no_longer_open": "this form is no longer open: it was completed or cancelled "
                          "meanwhile. The list now shows it as it is.",
        "no_longer_running": "this schedule has ended meanwhile. The list now shows it as "
                             "it is.",
        "no_scope": "the EHR did not allow this app to assign forms to this patient ({why}). "
                    "Ask the EHR's administrator to grant the app the scopes it asks for.",
        "task_status": {"requested": "To do", "received": "To do", "accepted": "To do",
                        "ready": "To do", "in-progress": "Started", "on-hold": "On hold",
                        "completed": "Completed", "cancelled": "Cancelled",
                        "failed": "Failed", "rejected": "Refused",
                        "entered-in-error": "Entered in error", "draft": "Draft"},
        "plan_status": {"active": "Running", "revoked": "Stopped", "completed": "Ended",
                        "on-hold": "Paused", "draft": "Draft",
                        "entered-in-error": "Entered in error"},
        "units": {"d": {"one": "every day", "many": "every {n} days"},
                  "wk": {"one": "every week", "many": "every {n} weeks"},
                  "mo": {"one": "every month", "many": "every {n} months"}},
        "choose_form": "Choose at least one form.",
        "no_such_form": "One of the chosen forms is not offered here: reload the page.",
        "due_invalid": "Give the due date as a date (YYYY-MM-DD).",
        "due_past": "The due date has passed: choose today or a later day.",
        "every_invalid": "Say how often as a whole number from 1 to 99.",
        "unit_invalid": "Choose weeks or months.",
        "start_invalid": "Give the date of the first time (YYYY-MM-DD).",
        "end_invalid": "Give the last date as a date (YYYY-MM-DD).",
        "end_before_start": "The last date must come after the first.",
        "count_invalid": "Say how many times as a whole number from 1 to 999.",
        "end_or_count": "Give a last date or a number of times, not both.",
    },
    "it": {
        "tasks_nav": "Questionari assegnati", "tasks_for": "Questionari assegnati al paziente",
        "assign_link": "Assegnare questionari da compilare al paziente, una volta o con una "
                       "cadenza",
        "assign_title": "Assegnare questionari", "assign_forms": "Questionari",
        "self_report": "Compilati dal paziente", "clinician_rated": "Valutati dal clinico",
        "when": "Quando", "once": "Una volta, entro una data", "repeat": "Con una cadenza",
        "due_by": "Da compilare entro", "default_window": "Proposta: {n} giorni da oggi.",
        "every": "Ogni", "unit_label": "Unità", "unit_wk": "settimane", "unit_mo": "mesi",
        "from": "La prima volta il", "ends": "Termina", "ends_on": "A una data",
        "ends_after": "Dopo un numero di volte", "end_date": "Ultima data",
        "times": "Numero di volte",
        "ends_never": "Non fissato: finché la cadenza non viene interrotta",
        "assign": "Assegna",
        "tasks_heading": "Questionari da compilare", "col_select": "Da consegnare",
        "col_form": "Questionario", "col_status": "Stato", "col_due": "Scadenza",
        "col_owner": "Compilato da", "col_done": "Completato o chiuso il",
        "col_action": "Azione", "owner_patient": "Paziente", "owner_clinician": "Clinico",
        "task_overdue": "In ritardo: scadeva il {date}", "from_schedule": "da una cadenza",
        "cancel": "Annulla", "cancel_label": "Annulla {form}",
        "select_label": "Consegna {form} al paziente",
        "no_tasks": "Nessun questionario assegnato.",
        "schedules_heading": "Cadenze", "col_forms": "Questionari",
        "col_cadence": "Frequenza", "col_from": "La prima volta il", "col_until": "Fino a",
        "col_next": "Prossima",
        "stop": "Interrompi", "stop_label": "Interrompi la cadenza di {forms}",
        "no_schedules": "Nessuna cadenza.",
        "until_date": "fino al {date}", "until_count": "{n} volte",
        "until_none": "nessuna fine fissata", "activity_cancelled": "{form} (interrotto)",
        "handover_title": "Compilare ora, su questo dispositivo",
        "handover": "Consegna al paziente (per tornare dovrà accedere di nuovo)",
        "handover_help": "Spuntare nell'elenco sopra i questionari aperti del paziente, poi "
                         "consegnare il dispositivo: mostra solo quei questionari, bloccato, "
                         "senza modo di tornare alla cartella. Per tornare a questa pagina "
                         "dovrà accedere di nuovo dall'EHR.",
        "handover_none": "Spuntare almeno un questionario aperto che compila il paziente.",
        "handing": "Consegna in corso…",
        "loading_tasks": "Caricamento…", "working": "Salvataggio…",
        "assigned": "Assegnati: {forms}, da compilare entro il {date}.",
        "scheduled": "Cadenza salvata: {forms}, {cadence}.",
        "cancelled": "Annullato: {form}.", "stopped": "Cadenza interrotta: {forms}.",
        "not_done": "Non fatto: {why}",
        "lost_connection": "Non fatto: la connessione si è interrotta. Ricaricare la pagina "
                           "per vedere cosa è stato salvato, poi riprovare.",
        "no_requester": "L'EHR non ha indicato chi ha effettuato l'accesso (fhirUser): "
                        "serve per assegnare questionari. Aprire di nuovo l'app dall'EHR.",
        "no_longer_open": "questo questionario non è più aperto: nel frattempo è stato "
                          "completato o annullato. L'elenco ora lo mostra com'è.",
        "no_longer_running": "questa cadenza nel frattempo si è conclusa. L'elenco ora la "
                             "mostra com'è.",
        "no_scope": "l'EHR non ha permesso a questa app di assegnare questionari a questo "
                    "paziente ({why}). Chiedere all'amministratore dell'EHR di concedere "
                    "all'app gli scope che richiede.",
        "task_status": {"requested": "Da fare", "received": "Da fare", "accepted": "Da fare",
                        "ready": "Da fare", "in-progress": "Iniziato", "on-hold": "Sospeso",
                        "completed": "Completato", "cancelled": "Annullato",
                        "failed": "Non riuscito", "rejected": "Rifiutato",
                        "entered-in-error": "Inserito per errore", "draft": "Bozza"},
        "plan_status": {"active": "Attiva", "revoked": "Interrotta", "completed": "Conclusa",
                        "on-hold": "Sospesa", "draft": "Bozza",
                        "entered-in-error": "Inserita per errore"},
        "units": {"d": {"one": "ogni giorno", "many": "ogni {n} giorni"},
                  "wk": {"one": "ogni settimana", "many": "ogni {n} settimane"},
                  "mo": {"one": "ogni mese", "many": "ogni {n} mesi"}},
        "choose_form": "Scegliere almeno un questionario.",
        "no_such_form": "Uno dei questionari scelti non è disponibile: ricaricare la pagina.",
        "due_invalid": "Indicare la scadenza come data (AAAA-MM-GG).",
        "due_past": "La scadenza è già passata: scegliere oggi o un giorno successivo.",
        "every_invalid": "Indicare ogni quanto con un numero intero da 1 a 99.",
        "unit_invalid": "Scegliere settimane o mesi.",
        "start_invalid": "Indicare la data della prima volta (AAAA-MM-GG).",
        "end_invalid": "Indicare l'ultima data come data (AAAA-MM-GG).",
        "end_before_start": "L'ultima data deve venire dopo la prima.",
        "count_invalid": "Indicare quante volte con un numero intero da 1 a 999.",
        "end_or_count": "Indicare un'ultima data o un numero di volte, non entrambi.",
    },
}
for _lang, _more in ASSIGN_WORDS.items():
    WORDS[_lang].update(_more)

# Fix round of issue 14: the hand-over's back-button page, dates and drafts, progress.
FIX_PATIENT_WORDS: dict[str, dict[str, str]] = {
    "en": {"handover_here": "This device is in patient mode: your forms are here.",
           "handover_link": "Go to your forms",
           "handover_leave": "When you have finished, give the device back to your clinician: "
           "only they can leave patient mode.",
           "progress": "{n} of {total} answered",
           "due": "Please fill in by {date}", "overdue": "Still to do: it was due on {date}"},
    "it": {"handover_here": "Questo dispositivo è in modalità paziente: i tuoi questionari "
           "sono qui.", "handover_link": "Vai ai tuoi questionari",
           "handover_leave": "Quando hai finito, restituisci il dispositivo al tuo clinico: "
           "solo lui può uscire dalla modalità paziente.",
           "progress": "{n} di {total} risposte date",
           "due": "Da compilare entro il {date}", "overdue": "Ancora da fare: era da compilare "
           "entro il {date}"},
}
for _lang, _fix in FIX_PATIENT_WORDS.items():
    WORDS[_lang].update(_fix)

MONTHS = {"en": ("January", "February", "March", "April", "May", "June", "July", "August",
                 "September", "October", "November", "December"),
          "it": ("gennaio", "febbraio", "marzo", "aprile", "maggio", "giugno", "luglio",
                 "agosto", "settembre", "ottobre", "novembre", "dicembre")}


def long_date(day: str, lang: str) -> str:
    """A `YYYY-MM-DD` day as people write it: "29 November 2026", "29 novembre 2026"."""
    year, month, date = (int(p) for p in day[:10].split("-"))
    return f"{date} {MONTHS.get(lang, MONTHS['en'])[month - 1]} {year}"


# The assignments page's fix round (issue 14): two lists, synthetic demo data, cadence per form.
FIX_WORDS: dict[str, dict[str, Any]] = {
    "en": {"closed_heading": "Completed or closed", "synthetic": "synthetic",
           "no_open_tasks": "No form is waiting to be filled.", "activity_stopped": "stopped",
           "synthetic_banner": "Synthetic data. Some forms and schedules on this page are made "
                               "up for demonstration (marked “synthetic”); they are not a "
                               "patient's record.",
           "times_n": {"one": "once", "two": "twice", "many": "{n} times"},
           "gaps": {"d": {"one": "1 day", "many": "{n} days"},
                    "wk": {"one": "1 week", "many": "{n} weeks"},
                    "mo": {"one": "1 month", "many": "{n} months"}},
           "count_cadence": "{times}, {gap} apart", "cadence_of": "{forms}: {cadence}"},
    "it": {"closed_heading": "Completati o chiusi", "synthetic": "sintetico",
           "no_open_tasks": "Nessun questionario in attesa di compilazione.",
           "activity_stopped": "interrotto",
           "synthetic_banner": "Dati sintetici. Alcuni questionari e cadenze di questa pagina "
                               "sono inventati a scopo dimostrativo (indicati come "
                               "“sintetico”): non appartengono alla cartella di un paziente.",
           "times_n": {"one": "una volta", "two": "due volte", "many": "{n} volte"},
           "gaps": {"d": {"one": "1 giorno", "many": "{n} giorni"},
                    "wk": {"one": "1 settimana", "many": "{n} settimane"},
                    "mo": {"one": "1 mese", "many": "{n} mesi"}},
           "count_cadence": "{times}, a {gap} di distanza", "cadence_of": "{forms}: {cadence}"},
}
for _lang, _more in FIX_WORDS.items():
    WORDS[_lang].update(_more)
