"""The final round's six published columns for the demo generator (issue 12, `--schema final`).

`leadscore generate --schema final` writes the qualifier files (`generate.py`) plus, after the 28
columns and before `is_converted`, the columns `input_format.FINAL_COLUMNS` declares:

- `lead_date`: ISO dates over two years of training leads (TRAIN_START, TRAIN_DAYS), rows ordered
  as leads arrive; the score file holds the leads of the next one to two months (a nightly job
  scores tomorrow's leads). Volume grows over time, is low on weekends, in August and around the
  new year; a repeat customer's leads cluster in time (one project, several inquiries).
- `lead_description`: short inquiry texts in the customer's own words, mostly English, some
  Spanish / Portuguese from Latin America: a greeting, the request (a concrete project with
  quantities, a place and a date; a plain price question; a demo; "send me a brochure"; a
  support problem; a partnership or job request; "test"), sometimes a fake phone number or an
  e-mail at example.com/.org/.net, filler, a sign-off; typos, lower case, capitals. Leads whose
  `lead_desc_length` is the placeholder 3 have an empty text (or `n/a`, `...`): 3 is the length
  of the string "nan". Every other row's `lead_desc_length` is the length of its text.
- `customer_history`: `yes`/`no`: yes when the customer has an earlier lead in the files (train
  before score), or records from before the files (its historical_existing_cnt, or ~12% others).
- `lead_from_channel`: eight channels in spelling families (`Web Form`, `web_form`, `Website`,
  `Trade Show`, `Partner Referral`, `Email Campaign`, `Live Chat`, ...), ~3% empty; chat grows
  over time, trade shows cluster in the event months.
- `transfer_agreement`: yes/no as people and systems write it (`yes`, `Y`, `true`, `FALSE`, ...),
  ~4% empty; European leads consent less often.
- `expected_budget`: a budget bucket written as people type it: ranges (`$10,000 - $50,000`,
  `10k-50k USD`, `Less than $10K`, `More than $1M`), amounts (`$25,000`, `€20.000`, `1억`,
  `3000만원`), `TBD`, or empty (more often when the BANT answers are thin). Euros for most
  European leads, won for Korean leads (and a few others).

The label: each column adds an effect on the same meaning scale as the qualifier columns
(times generate.EFFECT_SCALE), before the labels are drawn, so generate's intercept keeps the
training rate at 8.2%: budget size (monotone, empty and TBD lowest), channel, description intent,
the customer's history and a follow-up within FOLLOW_UP_DAYS of the customer's previous lead,
consent, month (quarter ends up, August and December down), weekends, and a slow drift of the
base rate over time (one smooth wave, its phase drawn from the seed).

Deterministic: the final columns come from their own generator, `default_rng([seed, 12])`, so a
final-round file's 28 columns hold the same rows as the qualifier file of the same seed (in date
order), and only the labels differ.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from leadscore.generate import COUNTRY_REGION, EFFECT_SCALE, _choice, _table, _typo

TRAIN_START = np.datetime64("2023-04-01")
TRAIN_DAYS = 731  # two years: 2023-04-01 .. 2025-03-31
SCORE_DAYS_RANGE = (28, 61)  # the score leads: the next one to two months
CLUSTERED_SHARE = 0.6  # of a repeat customer's leads: near the customer's own time (one project)
CLUSTER_SD = 0.02  # of the window, about two weeks
PRE_RECORDS_SHARE = 0.12  # customers with records from before the files
FOLLOW_UP_DAYS = 45

# effects on the meaning scale (times EFFECT_SCALE on the logit)
HISTORY_EFFECT = 0.12
FOLLOW_UP_EFFECT = 0.15
WEEKEND_EFFECT = -0.15
MONTH_EFFECT = {1: -0.04, 2: 0.0, 3: 0.08, 4: 0.0, 5: 0.0, 6: 0.08, 7: -0.03, 8: -0.08, 9: 0.08, 10: 0.0,
                11: 0.04, 12: -0.08}
DRIFT_AMPLITUDE = 0.07
DRIFT_PERIOD = 1.6  # in training windows: less than one wave over the two years

CHANNELS = [  # canonical, weight, effect, spellings
    ("Web Form", 0.36, 0.0, "Web Form:40|web_form:20|Web form:15|webform:10|Website:10|WEB FORM:5"),
    ("Email Campaign", 0.13, -0.25, "Email Campaign:40|email_campaign:20|E-mail Campaign:15|Email campaign:15|"
     "Newsletter:10"),
    ("Chat", 0.10, -0.1, "Chat:40|Live Chat:25|chat:20|live_chat:15"),
    ("Trade Show", 0.08, 0.3, "Trade Show:45|trade_show:20|Tradeshow:15|Trade show:10|Exhibition:10"),
    ("Partner Referral", 0.10, 0.4, "Partner Referral:45|partner_referral:25|Partner referral:15|"
     "Referral - Partner:15"),
    ("Phone", 0.08, 0.15, "Phone:35|Call Center:25|Inbound Call:25|phone:15"),
    ("Social Media", 0.07, -0.4, "Social Media:40|LinkedIn:25|social_media:20|Facebook:15"),
    ("Direct Sales", 0.05, 0.35, "Direct Sales:45|Sales Rep:35|direct_sales:20"),
]
CHANNEL_MISSING_SHARE = 0.03
CHANNEL_MISSING_EFFECT = -0.05
EVENT_MONTHS = (2, 6, 9)  # trade-show season
EVENT_SHARE = 0.10

TRANSFER_YES = "yes:35|Yes:15|Y:15|true:15|TRUE:5|y:5|YES:5|True:5"
TRANSFER_NO = "no:35|No:15|N:15|false:15|FALSE:5|n:5|NO:5|False:5"
TRANSFER_MISSING_SHARE = 0.04
TRANSFER_EFFECT = {"yes": 0.08, "no": -0.05, "missing": 0.0}

# budget buckets: 0 empty, 1 TBD, 2.. the amounts; effect monotone in size
BUDGET_BUCKETS = ["empty", "TBD", "< 10K", "10K-50K", "50K-100K", "100K-500K", "500K-1M", "> 1M"]
BUDGET_EFFECT = np.array([-0.3, -0.25, -0.12, 0.0, 0.15, 0.3, 0.4, 0.5])
BUDGET_USD = [(None, None), (None, None), (2_000, 10_000), (10_000, 50_000), (50_000, 100_000),
              (100_000, 500_000), (500_000, 1_000_000), (1_000_000, 5_000_000)]
BUDGET_CUTS = np.array([-1.0, 0.0, 0.6, 1.5, 2.1])  # latent size -> the six amount buckets
BUDGET_TBD_SHARE = 0.12
BUDGET_EXACT_SHARE = 0.25
EUR_PER_USD, KRW_PER_USD = 0.92, 1_350.0
BUDGET_TBD = ["TBD", "tbd", "Not sure", "To be decided", "N/A", "unknown", "Not decided yet", "TBC"]
BUDGET_RANGES = {  # bucket -> typed ranges, commonest first
    "USD": {2: ["Less than $10K", "Less than $10,000", "<10k", "under 10k USD", "$0 - $10,000"],
            3: ["$10,000 - $50,000", "10k-50k USD", "$10K-$50K", "10,000 ~ 50,000 USD"],
            4: ["$50,000 - $100,000", "50k-100k USD", "$50K-$100K", "50,000 ~ 100,000 USD"],
            5: ["$100,000 - $500,000", "100k-500k USD", "$100K-$500K", "100,000 ~ 500,000 USD"],
            6: ["$500,000 - $1,000,000", "500k-1M USD", "$500K-$1M"],
            7: ["More than $1M", "More than $1,000,000", "> 1M USD", "Over 1 million", "$1M+"]},
    "EUR": {2: ["Less than €10K", "< €10.000"], 3: ["€10.000 - €50.000", "10-50k EUR"],
            4: ["€50.000 - €100.000", "50-100k EUR"], 5: ["€100.000 - €500.000", "100-500k EUR"],
            6: ["€500.000 - €1.000.000", "500k-1M EUR"], 7: ["More than €1M", "> 1.000.000 €"]},
    "KRW": {2: ["1000만원 미만"], 3: ["1천만원~5천만원"], 4: ["5천만원~1억"], 5: ["1억~5억"], 6: ["5억~10억"],
            7: ["10억 이상"]},
}
EUROPE = "europe"

# what a description asks for; effect on the meaning scale; probabilities by inquiry family
INTENTS = ["concrete", "quote", "demo", "info", "support", "partner", "spam"]
INTENT_EFFECT = np.array([0.5, 0.2, 0.15, -0.3, -0.6, -0.5, -1.0])
EMPTY = -1
INQUIRY_INTENTS = {  # inquiry family -> intent probabilities (INTENTS order)
    "buy": [0.35, 0.35, 0.05, 0.15, 0.03, 0.03, 0.04],
    "learn": [0.12, 0.15, 0.20, 0.45, 0.03, 0.02, 0.03],
    "support": [0.04, 0.05, 0.03, 0.20, 0.60, 0.03, 0.05],
    "other": [0.06, 0.10, 0.05, 0.25, 0.10, 0.35, 0.09],
    "missing": [0.15, 0.20, 0.07, 0.30, 0.12, 0.08, 0.08],
}
INQUIRY_FAMILY = {
    "quotation or purchase consultation": "buy", "sales inquiry": "buy",
    "product information": "learn", "request a demo": "learn",
    "usage or technical consultation": "support", "technical support": "support", "services": "support",
    "trainings": "support",
}
SPAM_MAX_LENGTH = 40  # a "test" lead is a short one

TEMPLATES = {
    "concrete": [
        "We need {qty} {product} for {place}. Installation planned {when}.",
        "Looking for {qty} units of {product} for {place}, budget approved, please quote.",
        "Project: {place}. Need {qty} x {product}, delivery {when}.",
        "We are renovating {place} and need {qty} {product}.",
        "Tender for {qty} {product} closes {when}, please send best price and specs.",
        "Please quote {qty} pcs {product} incl. installation, PO expected {when}.",
        "Requirement of {qty} nos {product} for {place}, kindly share quotation.",
    ],
    "quote": ["Please send price for {product}.", "What is the price of {product}?",
              "I want a quotation for {product}.", "Need quote for {product} asap",
              "How much does {product} cost?", "price list {product} pls"],
    "demo": ["Can someone contact me to schedule a demo of {product}?",
             "We would like to see {product} in person, is there a showroom near us?",
             "Please call me to discuss {product} for {place}.",
             "Interested in a presentation of {product} for our team."],
    "info": ["Send me a brochure.", "please send me the catalog of {product}",
             "Just looking for information about {product}.", "Need more info on {product}",
             "Do you have specifications for {product}?", "I want to know more about your products."],
    "support": ["My {product} is not turning on, is it under warranty?", "{product} screen flickering, need service",
                "How do I update the firmware of {product}?", "Need spare parts for {product}",
                "remote control not working", "The {product} we bought last year shows an error code."],
    "partner": ["We are a distributor interested in becoming an LG partner.",
                "We would like to resell LG products in our region.", "Looking for a job in sales.",
                "I am a student doing a project on {product}.", "We offer SEO services for your website."],
    "spam": ["test", "testing", "asdf asdf", "hello", "qwerty", "Test lead please ignore", "xxxx"],
}
TEMPLATES_ES = {
    "concrete": ["Necesitamos {qty} {product} para {place_local}, favor enviar cotización.",
                 "Requerimos {qty} unidades de {product}, entrega {when_local}."],
    "quote": ["Precio de {product} por favor", "Solicito cotización de {product}"],
    "demo": ["Quisiera una demostración de {product}"],
    "info": ["Quisiera información sobre {product}", "Envíenme el catálogo"],
    "support": ["Mi {product} no enciende", "Necesito soporte técnico para {product}"],
    "partner": ["Somos distribuidores y queremos trabajar con LG"],
    "spam": ["prueba", "hola"],
}
TEMPLATES_PT = {
    "concrete": ["Preciso de orçamento para {qty} {product} para {place_local}.",
                 "Precisamos de {qty} unidades de {product}, entrega {when_local}."],
    "quote": ["Gostaria de um orçamento de {product}", "Qual o preço do {product}?"],
    "demo": ["Gostaria de uma demonstração de {product}"],
    "info": ["Gostaria de informações sobre {product}", "Me enviem o catálogo"],
    "support": ["Meu {product} está com defeito", "Preciso de assistência técnica"],
    "partner": ["Somos revendedores e queremos ser parceiros da LG"],
    "spam": ["teste", "olá"],
}
PLACES = {  # by vertical; {k} a count
    "corporate / office": ["our new office", "the head office meeting rooms", "{k} conference rooms",
                           "a new office building"],
    "retail": ["our {k} stores", "a shopping mall", "our new showroom"],
    "hotel & accommodation": ["a hotel with {k} rooms", "our resort", "the hotel lobby"],
    "hospital & health care": ["the radiology department", "our clinic", "a new hospital wing"],
    "education": ["{k} classrooms", "our school", "the university auditorium"],
    "residential (home)": ["my house", "an apartment building", "our villa"],
    "special purpose": ["our church", "the control room", "a stadium"],
    "factory": ["our factory", "the warehouse", "the production line"],
    "public facility": ["the convention center", "a city museum"],
    "transportation": ["the airport terminal", "a metro station"],
    "government department": ["a government office", "city hall"],
    "power plant / renewable energy": ["a solar plant", "the substation"],
    None: ["our new premises", "a new building", "our company premises", "a client's site"],
}
PLACES_ES = ["nuestra oficina", "un hotel", "nuestra tienda", "el proyecto", "la escuela"]
PLACES_PT = ["nosso escritório", "um hotel", "nossa loja", "o projeto", "a escola"]
WHEN = ["by March", "next month", "in Q3", "before end of year", "within 2 weeks", "by 15/08", "this quarter",
        "in January", "asap"]
WHEN_ES = ["el próximo mes", "en marzo", "lo antes posible"]
WHEN_PT = ["no próximo mês", "em março", "o quanto antes"]
PRODUCT_FALLBACK = {"ID": ["digital signage", "displays", "LED screens", "video wall"],
                    "AS": ["air conditioners", "VRF system", "AC units", "heat pumps"],
                    "IT": ["monitors", "laptops", "projectors"], "Solution": ["solar panels", "ESS"],
                    "CM": ["TVs"]}
GENERIC_PRODUCTS = ("etc.", "others", "other")
GREETINGS = ["Hi,", "Hello,", "Dear LG team,", "Good morning,", "Hi team,", "Dear Sir/Madam,", "hello", "Hi"]
SIGN_OFFS = ["Thanks", "Thank you.", "Regards, {name}", "Best regards", "Thanks & regards, {name}", "{name}"]
FILLERS = [
    "We are a company with {k} employees.", "Our current equipment is 8 years old.",
    "The project is funded by the city.", "Please contact me by phone.",
    "We already use LG products in our other building.", "The architect recommended LG.",
    "We are comparing with other brands.", "Kindly revert at the earliest.", "Thanks in advance.",
    "Please share the datasheet as well.", "We have a showroom in the city centre.",
    "Our IT team will evaluate the options.", "Is there a local installer you can recommend?",
    "We are open to a call this week.", "I found your website through a search.",
    "The site is ready for installation.", "Looking forward to your reply.",
    "Our management wants to decide soon.", "We had a good experience with LG before.",
    "Please let me know the warranty terms.", "Energy efficiency is important for us.",
    "We have {k} sites in the country.", "Delivery address to be confirmed.", "Is there any discount for volume?",
    "The end user is a government agency.", "We need the installation done on weekends.",
    "Our consultant will send the drawings.", "Please send the quotation in local currency.",
    "I tried the chat but got no answer.", "We saw your products at a friend's office.",
    "Let me know if you need more details.", "Financing options would help us.",
]
# strides through FILLERS prime to its length: no sentence twice in one text
FILLER_STEPS = tuple(k for k in range(1, 12) if math.gcd(k, len(FILLERS)) == 1)
FIRST_NAMES = ["john", "maria", "raj", "ana", "li", "carlos", "priya", "james", "fatima", "diego", "sara",
               "ahmed", "minji", "lucas", "emma", "arjun"]
LAST_NAMES = ["smith", "garcia", "sharma", "silva", "kim", "lee", "patel", "santos", "mueller", "rossi", "khan",
              "lopez"]
NO_DESCRIPTION = ["n/a", "N/A", "...", "nil"]  # three characters: the placeholder length


class FinalRound:
    """The six columns for the train rows, then the score rows (which follow them in time)."""

    def __init__(self, seed: int, world, train_rows: int, score_rows: int):
        self.rng = np.random.default_rng([seed, 12])
        self.world = world
        rng = self.rng
        self.score_days = int(np.clip(round(TRAIN_DAYS * score_rows / train_rows), *SCORE_DAYS_RANGE))
        n_cust = len(world.cust_ids)
        self.anchor = rng.random(n_cust)  # where in its window a customer's clustered leads fall
        self.pre_records = (rng.random(n_cust) < PRE_RECORDS_SHARE) | ~np.isnan(world.cust_hist)
        self.last_day = np.full(n_cust, -1, dtype=np.int64)  # the customer's latest lead so far
        self.drift_phase = rng.uniform(0.0, 2 * np.pi)
        self.channel = _table(CHANNELS)
        self.yes, self.no = (_table([(k, 1.0, 0.0, s)])[3][0] for k, s in (("yes", TRANSFER_YES), ("no", TRANSFER_NO)))
        self.region = np.array([COUNTRY_REGION[c] for c in world.c_names], dtype=object)

    # -- the hook generate._rows calls ------------------------------------------------------------
    def extend(self, split: str, frame: pd.DataFrame, eta: np.ndarray, special: np.ndarray, *, cust, country,
               bu, inq, placeholder, bant, enterprise, hist, drift: bool = False):
        """Orders the rows by a lead date and adds the six columns; returns (frame, eta, special) with
        the final columns' share of the label added to eta."""
        rng = self.rng
        n = len(frame)
        score = split == "score"
        start, days = (TRAIN_DAYS, self.score_days) if score else (0, TRAIN_DAYS)
        day = start + np.sort(_choice(rng, n, self._intensity(start, days)))
        clustered = (cust >= 2) & (rng.random(n) < CLUSTERED_SHARE)
        key = np.where(clustered, self.anchor[cust] + rng.normal(0.0, CLUSTER_SD, n), rng.random(n))
        order = np.argsort(key, kind="stable")
        frame = frame.iloc[order].reset_index(drop=True)
        eta, special = eta[order], special[order]
        cust, country, bu, inq = cust[order], country[order], bu[order], inq[order]
        placeholder, bant, enterprise, hist = placeholder[order], bant[order], enterprise[order], hist[order]
        dates = TRAIN_START + day.astype("timedelta64[D]")
        month = dates.astype("datetime64[M]").astype(np.int64) % 12 + 1
        weekend = (dates.astype(np.int64) + 3) % 7 >= 5  # 1970-01-01 was a Thursday
        t = day / TRAIN_DAYS

        # the customer's previous lead, in this file or an earlier one
        by_cust = np.lexsort((np.arange(n), cust))
        c_sorted = cust[by_cust]
        same = np.r_[False, c_sorted[1:] == c_sorted[:-1]]
        prev_sorted = np.where(same, np.r_[-1, day[by_cust][:-1]], self.last_day[c_sorted])
        prev = np.empty(n, dtype=np.int64)
        prev[by_cust] = prev_sorted
        np.maximum.at(self.last_day, cust, day)
        has_prev = prev >= 0
        follow_up = has_prev & (day - prev <= FOLLOW_UP_DAYS)
        history = has_prev | self.pre_records[cust] | ~np.isnan(hist)

        region = self.region[country]
        channel, channel_raw = self._channels(rng, n, month, t, score and drift)
        transfer, transfer_raw = self._transfer(rng, n, region)
        budget, budget_raw = self._budgets(rng, n, bant, enterprise, bu, country, region)
        intent, text = self._descriptions(rng, frame, n, inq, placeholder, cust, country, region, budget, budget_raw)
        has_text = ~placeholder
        lengths = np.array([len(s) for s in text], dtype=np.int64)
        frame["lead_desc_length"] = np.where(has_text, lengths, frame["lead_desc_length"].to_numpy())

        frame["lead_date"] = dates.astype(str).astype(object)
        frame["lead_description"] = text
        frame["customer_history"] = np.where(history, "yes", "no").astype(object)
        frame["lead_from_channel"] = channel_raw
        frame["transfer_agreement"] = transfer_raw
        frame["expected_budget"] = budget_raw

        meaning = (
            np.where(channel >= 0, self.channel[2][np.maximum(channel, 0)], CHANNEL_MISSING_EFFECT)
            + BUDGET_EFFECT[budget]
            + np.where(intent >= 0, INTENT_EFFECT[np.maximum(intent, 0)], 0.0)
            + HISTORY_EFFECT * history + FOLLOW_UP_EFFECT * follow_up
            + np.select([transfer == 1, transfer == 0], [TRANSFER_EFFECT["yes"], TRANSFER_EFFECT["no"]],
                        TRANSFER_EFFECT["missing"])
            + np.array([MONTH_EFFECT[m] for m in range(1, 13)])[month - 1]
            + WEEKEND_EFFECT * weekend
            + self.drift(t)
        )
        return frame, eta + EFFECT_SCALE * meaning, special

    def drift(self, t):
        """The base rate's slow drift on the meaning scale, t in training windows from TRAIN_START."""
        return DRIFT_AMPLITUDE * np.sin(2 * np.pi * np.asarray(t) / DRIFT_PERIOD + self.drift_phase)

    # -- columns ----------------------------------------------------------------------------------
    @staticmethod
    def _intensity(start: int, days: int) -> np.ndarray:
        """Relative lead volume per day: growing, low on weekends, in August and at the new year."""
        d = np.arange(start, start + days)
        dates = TRAIN_START + d.astype("timedelta64[D]")
        month = dates.astype("datetime64[M]").astype(np.int64) % 12 + 1
        mday = (dates - dates.astype("datetime64[M]")).astype(np.int64) + 1
        weekday = (dates.astype(np.int64) + 3) % 7
        v = (1.0 + 0.3 * d / TRAIN_DAYS) * np.array([1.0, 1.05, 1.05, 1.0, 0.9, 0.3, 0.2])[weekday]
        v = v * np.where(month == 8, 0.85, 1.0)
        v = v * np.where(((month == 12) & (mday >= 20)) | ((month == 1) & (mday <= 5)), 0.5, 1.0)
        return v

    def _channels(self, rng, n, month, t, flatter: bool):
        names, p, _, variants = self.channel
        c = _choice(rng, n, p)
        chat, web, show = names.index("Chat"), names.index("Web Form"), names.index("Trade Show")
        c[(c == chat) & (rng.random(n) > np.minimum(1.0, 0.3 + 0.9 * t))] = web  # chat is newer
        c[np.isin(month, EVENT_MONTHS) & (rng.random(n) < EVENT_SHARE)] = show
        c[rng.random(n) < CHANNEL_MISSING_SHARE] = -1
        raw = np.full(n, None, dtype=object)
        u = rng.random(n)
        for k, (spellings, train_cdf, flat_cdf) in enumerate(variants):
            m = c == k
            cdf = flat_cdf if flatter else train_cdf
            raw[m] = spellings[np.minimum(np.searchsorted(cdf, u[m], side="right"), len(spellings) - 1)]
        return c, raw

    def _transfer(self, rng, n, region):
        consent = rng.random(n) < np.where(region == EUROPE, 0.45, 0.8)
        value = np.where(consent, 1, 0)
        value[rng.random(n) < TRANSFER_MISSING_SHARE] = -1
        raw = np.full(n, None, dtype=object)
        u = rng.random(n)
        for v, (spellings, cdf, _) in ((1, self.yes), (0, self.no)):
            m = value == v
            raw[m] = spellings[np.minimum(np.searchsorted(cdf, u[m], side="right"), len(spellings) - 1)]
        return value, raw

    def _budgets(self, rng, n, bant, enterprise, bu, country, region):
        """Bucket per row (BUDGET_BUCKETS) and the text typed for it."""
        given = rng.random(n) < 0.35 + 0.45 * bant  # fuller BANT answers, a budget more often
        tbd = given & (rng.random(n) < BUDGET_TBD_SHARE)
        bu_shift = {"ID": 0.2, "AS": 0.3, "IT": -0.5, "Solution": 0.5, "CM": -0.5}
        shift = np.array([bu_shift[b] for b in self.world.bu_names])[bu]
        size = rng.normal(0.0, 1.0, n) + 0.6 * enterprise + shift
        bucket = np.where(given, 2 + np.searchsorted(BUDGET_CUTS, size), 0)
        bucket[tbd] = 1
        u = rng.random((n, 4))
        currency = np.full(n, "USD", dtype=object)
        currency[u[:, 1] < 0.01] = "KRW"
        currency[(region == EUROPE) & (u[:, 1] < 0.6)] = "EUR"
        currency[(country == self.world.c_names.index("South Korea")) & (u[:, 1] < 0.7)] = "KRW"
        raw = np.full(n, None, dtype=object)
        rows = np.flatnonzero(bucket >= 1)
        typed = []
        for b, cur, (u0, _, u2, u3) in zip(bucket[rows].tolist(), currency[rows].tolist(), u[rows].tolist()):
            if b == 1:
                typed.append(BUDGET_TBD[_rank_pick(u0, len(BUDGET_TBD))])
            elif u2 < BUDGET_EXACT_SHARE:
                lo, hi = BUDGET_USD[b]
                typed.append(_amount_text(lo * (hi / lo) ** u3, cur, u0))
            else:
                options = BUDGET_RANGES[cur][b]
                typed.append(options[_rank_pick(u0, len(options))])
        raw[rows] = np.array(typed + [None], dtype=object)[:-1]
        return bucket, raw

    def _descriptions(self, rng, frame, n, inq, placeholder, cust, country, region, budget, budget_raw):
        """Intent per row (INTENTS index, EMPTY for no text) and the text."""
        w = self.world
        target = frame["lead_desc_length"].to_numpy()
        families = np.array([INQUIRY_FAMILY.get(name, "other") for name in w.inq[0]], dtype=object)
        family = np.where(inq >= 0, families[np.maximum(inq, 0)], "missing")
        intent = np.full(n, EMPTY, dtype=np.int64)
        for f, p in INQUIRY_INTENTS.items():
            m = family == f
            intent[m] = _choice(rng, int(m.sum()), np.array(p))
        spam, info = INTENTS.index("spam"), INTENTS.index("info")
        intent[(intent == spam) & (target > SPAM_MAX_LENGTH)] = info
        intent[placeholder] = EMPTY

        # one uniform per decision and row, named by column
        (u_empty, u_name, u_last, u_product, u_when, u_place, u_template, u_phone, u_phone_form, u_email,
         u_email_form, u_greeting, u_budget, u_sign_off, u_typo, u_typo_word, u_case, u_lang) = rng.random((18, n))
        digits = rng.integers(10**7, 10**8, n)
        qty = np.maximum(2, np.round(rng.lognormal(np.log(12.0), 1.0, n))).astype(np.int64)
        k = rng.integers(3, 250, n)
        brazil = country == w.c_names.index("Brazil")
        lang = np.where(brazil & (u_lang < 0.25), "pt",
                        np.where((region == "latin america") & ~brazil & (u_lang < 0.2), "es", "en"))
        area = frame["business_area"].to_numpy()
        cust_area = np.array(w.ba_names + [None], dtype=object)[np.where(w.cust_ba >= 0, w.cust_ba, len(w.ba_names))]
        area = np.where(pd.isna(area), cust_area[cust], area)
        is_korea = country == w.c_names.index("South Korea")

        rows = zip(intent.tolist(), target.tolist(), budget.tolist(), budget_raw.tolist(), lang.tolist(),
                   area.tolist(), region.tolist(), is_korea.tolist(), frame["product_category"].tolist(),
                   frame["product_modelname"].tolist(), frame["business_unit"].tolist(), digits.tolist(),
                   qty.tolist(), k.tolist(), u_empty.tolist(), u_name.tolist(), u_last.tolist(), u_product.tolist(),
                   u_when.tolist(), u_place.tolist(), u_template.tolist(), u_phone.tolist(), u_phone_form.tolist(),
                   u_email.tolist(), u_email_form.tolist(), u_greeting.tolist(), u_budget.tolist(),
                   u_sign_off.tolist(), u_typo.tolist(), u_typo_word.tolist(), u_case.tolist())
        text = []
        for (it, tgt, bucket, budget_text, lg, ar, reg, kor, pc, mn, bu, dg, q, kk, e0, e_name, e_last, e_product,
             e_when, e_place, e_template, e_phone, e_phone_form, e_email, e_email_form, e_greeting, e_budget,
             e_sign_off, e_typo, e_typo_word, e_case) in rows:
            if it == EMPTY:
                text.append("" if e0 < 0.75 else _pick(NO_DESCRIPTION, e_name))
                continue
            kind = INTENTS[it]
            first, last = _pick(FIRST_NAMES, e_name), _pick(LAST_NAMES, e_last)
            local_places, local_when = (PLACES_PT, WHEN_PT) if lg == "pt" else (PLACES_ES, WHEN_ES)
            fields = dict(product=_product_text(pc, mn, bu, e_product), qty=q, when=_pick(WHEN, e_when),
                          place=_pick(PLACES.get(ar, PLACES[None]), e_place).format(k=kk),
                          place_local=_pick(local_places, e_place), when_local=_pick(local_when, e_when))
            if lg != "en":
                parts = [_pick((TEMPLATES_PT if lg == "pt" else TEMPLATES_ES)[kind], e_template).format(**fields)]
                if kind != "spam" and e_phone < 0.25:
                    parts.append(_phone(reg, kor, dg, e_phone_form))
            else:
                parts = [_pick(GREETINGS, e_greeting * 2.2)] if e_greeting < 0.45 and kind != "spam" else []
                parts.append(_pick(TEMPLATES[kind], e_template).format(**fields))
                if kind != "spam":
                    if kind == "concrete" and bucket >= 2 and e_budget < 0.5:
                        parts.append(f"Budget is {budget_text}.")
                    if e_phone < 0.22:
                        parts.append(_phone_sentence(_phone(reg, kor, dg, e_phone_form), first, e_phone_form))
                    if e_email < 0.18:
                        parts.append(_email_sentence(first, last, dg % 100, e_email_form))
                    length, step = sum(len(p) + 1 for p in parts), FILLER_STEPS[dg % len(FILLER_STEPS)]
                    for j in range(len(FILLERS)):
                        if length >= 0.85 * tgt:
                            break
                        filler = FILLERS[(dg + j * step) % len(FILLERS)].format(k=kk)
                        parts.append(filler)
                        length += len(filler) + 1
                    if e_sign_off < 0.35:
                        name = f"{first.capitalize()} {last.capitalize()}"
                        parts.append(_pick(SIGN_OFFS, e_sign_off / 0.35).format(name=name))
            s = " ".join(parts)
            if e_typo < 0.18:  # a typo in one longer word
                words = s.split(" ")
                long_words = [j for j, x in enumerate(words) if len(x) > 4 and x.isalpha()]
                if long_words:
                    j = _pick(long_words, e_typo_word)
                    words[j] = _typo(words[j], rng)
                    s = " ".join(words)
            if e_case < 0.12:
                s = s.lower()
            elif e_case < 0.15:
                s = s.upper()
            text.append(s if len(s) != 3 else s + ".")  # 3 is the placeholder length
        return intent, np.array(text + [None], dtype=object)[:-1]


def _pick(options, u: float):
    return options[min(int(u * len(options)), len(options) - 1)]


def _product_text(category, model, unit, u: float) -> str:
    """How a customer names the product: the model, the category (first of a list), or a plain word."""
    if isinstance(model, str) and u < 0.35:
        return ("LG " + model) if u < 0.2 else model
    if isinstance(category, str) and category.strip().lower() not in GENERIC_PRODUCTS:
        return category.split(",")[0].strip()
    return _pick(PRODUCT_FALLBACK.get(unit, PRODUCT_FALLBACK["ID"]), u)


def _phone(region: str, korea: bool, digits: int, u: float) -> str:
    """A made-up number in the region's format (555-01xx in North America, Ofcom's drama range in the UK)."""
    d = f"{digits:08d}"
    if korea:
        return f"010-{d[:4]}-{d[4:]}"
    if region == "north america":
        area = 201 + int(d[:3]) % 798
        return f"({area}) 555-01{d[3:5]}" if u < 0.5 else f"+1 {area} 555 01{d[3:5]}"
    if region == "south asia":
        return f"+91 9{d[:4]} {d[4:]}0" if u < 0.5 else f"9{d[:4]}{d[4:]}1"
    if region == "latin america":
        return f"+55 11 9{d[:4]}-{d[4:]}" if u < 0.4 else f"+52 55 {d[:4]} {d[4:]}"
    if region == EUROPE:
        return f"+44 20 7946 0{d[:3]}"
    if region == "middle east & africa":
        return f"+971 50 {d[:3]} {d[3:7]}"
    return f"+65 {d[:4]} {d[4:]}"


def _phone_sentence(phone: str, first: str, u: float) -> str:
    forms = ["Call me at {p}", "my number: {p}", "Mob: {p}", "Contact {n} on {p}.", "{p}", "Tel {p}"]
    return _pick(forms, u).format(p=phone, n=first.capitalize())


def _email_sentence(first: str, last: str, dd: int, u: float) -> str:
    addresses = [f"{first}.{last}@example.com", f"{first}{dd}@example.org", f"{first[0]}{last}@example.net",
                 "purchasing@example.com", f"{first}.{last}@{last}-group.example.com"]
    forms = ["email me at {e}", "Email: {e}", "{e}", "reach me on {e}", "mail - {e}"]
    return _pick(forms, (u * 7) % 1).format(e=_pick(addresses, u))


def _rank_pick(u: float, k: int) -> int:
    """An index in 0..k-1, the first ones commonest (weights 1/rank)."""
    cdf = _RANK_CDF.get(k)
    if cdf is None:
        w = [1.0 / r for r in range(1, k + 1)]
        cdf = _RANK_CDF[k] = [sum(w[:j + 1]) / sum(w) for j in range(k)]
    return next((j for j, c in enumerate(cdf) if u < c), k - 1)


_RANK_CDF: dict[int, list[float]] = {}


def _amount_text(usd: float, currency: str, u: float) -> str:
    """An amount as typed: '$25,000', '25000', 'USD 25,000', '25k'; '€20.000'; '1억', '3000만원'."""
    if currency == "KRW":
        krw = usd * KRW_PER_USD
        if krw >= 1e8:
            return f"{max(1, round(krw / 1e8))}억"
        return f"{max(1, round(krw / 1e7)) * 1000}만원"
    if currency == "EUR":
        eur = _round2(usd * EUR_PER_USD)
        text = f"{eur:,}".replace(",", ".")
        return f"€{text}" if u < 0.5 else (f"{text} €" if u < 0.8 else f"{eur} EUR")
    amount = _round2(usd)
    if u < 0.4:
        return f"${amount:,}"
    if u < 0.6:
        return str(amount)
    if u < 0.8:
        return f"USD {amount:,}"
    return f"{amount // 1000}k" if amount < 1_000_000 else f"{amount / 1e6:g}M"


def _round2(x: float) -> int:
    """Two significant figures, as people round a budget."""
    digits = max(0, int(np.floor(np.log10(x))) - 1)
    return int(round(x / 10**digits) * 10**digits)
