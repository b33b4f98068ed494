"""Realistic demo data in the competition input format (spec/input_schema.md).

The real lead files are proprietary, so `leadscore generate` writes look-alikes: the same columns
in the same order, the same missing rates (train and test differ), the same messy spellings and
cardinalities, and the same column rules (strategic flags, ver_* weights, win rates that are
functions of business_area / business_unit / response_corporate).

How the rows are made
---------------------
Every row is first drawn as *canonical* facts (customer type, job, true country, timeline bucket,
product, vertical, ...), then rendered into raw strings with the spelling families of the real
files (case, snake_case, `_`/`-`/space, slash spacing, `other`/`others`/`etc.`, typos, free text,
`ADDRESS / CITY / COUNTRY` with all its odd forms).

`is_converted` is drawn from a logistic model on the canonical facts (never on the raw spelling),
plus a per-customer and a per-owner random propensity, plus noise. Two customer ids are special
as in the real data: a catch-all id with ~13% of train rows converting at ~0.9%, and an id with
~4% of train rows that always converts. The intercept is solved numerically so the train positive
rate is 8.2% whatever the seed or row count.

The label rewards the feature work the dbt models do, and punishes label-encoding raw columns:
- spelling families are spread (the commonest spelling holds ~40-55% of its family, the rest are
  case / snake_case / hyphen / synonym variants that the spelling seeds map back), and the effect
  belongs to the canonical meaning;
- the parsed country counts: a region effect plus a country effect, and a lead answered by a
  subsidiary other than its country's own (~5% strays, plus countries served by a neighbouring
  subsidiary) converts less; the raw `customer_country` text has ~15k distinct strings;
- the timeline effect is monotone in months; bant answered count, the placeholder description
  length, multi-product lists and the customer's history count too.

Score rows come from the same process and the same intercept, with mostly new customer ids, ~43%
of owners unseen in train and a few product models train never saw. With `score_drift` they also
come through a later form version: the all-converting id rarer (~1% of rows), the spelling mix
flatter within each family and ~15% of values in capitals, spellings train never saw.
`score_prevalence` rebalances them (the real test file was about 1 positive per 2 negatives).

Deterministic: one `np.random.default_rng(seed)` drives everything; the same seed gives
byte-identical files. Fully vectorised: the real size takes about a second.

`schema="final"` adds the final round's six columns and their share of the label (generate_final,
from its own random stream, so the qualifier output of a seed never changes).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd

from leadscore.errors import LeadscoreError
from leadscore.input_format import ID_COLUMN, LABEL_COLUMN, LEAD_COLUMN_NAMES

REAL_TRAIN_ROWS = 59_299
REAL_SCORE_ROWS = 5_271
TRAIN_POSITIVE_RATE = 0.082
SCHEMAS = ("qualifier", "final")  # the 28 columns; the 28 plus the final round's six (generate_final)
CATCH_ALL_SHARE = 7_686 / REAL_TRAIN_ROWS  # one customer id holding ~13% of rows ...
CATCH_ALL_RATE = 0.009  # ... converting at ~0.9%
ALL_CONVERTED_SHARE = 2_421 / REAL_TRAIN_ROWS  # one customer id whose rows all convert
SCORE_ALL_CONVERTED_SHARE = 0.01  # ... rarer among the later score leads
DISTINCT_CUSTOMERS_PER_ROW = 35_110 / (REAL_TRAIN_ROWS - 7_686 - 2_421)
OWNERS_PER_ROW = 984 / REAL_TRAIN_ROWS
# label model: logit = b0 + EFFECT_SCALE * (effects of the cleaned meaning) + customer and owner
# propensities + noise; b0 is solved so the positive rate is TRAIN_POSITIVE_RATE
EFFECT_SCALE = 3.4
CUSTOMER_RE_SD = 1.0
OWNER_RE_SD = 1.4
NOISE_SD = 0.4
# score rows come through a later version of the web form: their spelling mix within a family is
# flatter (weights ** this), so the train-dominant spelling is less common there (same spellings)
SCORE_SPELLING_FLATTEN = 0.3
SCORE_UPPER_CASE_SHARE = 0.15
# leads answered by a subsidiary other than their country's own (~5%); they, and leads from
# countries a neighbouring subsidiary serves, convert less (effect on the meaning scale)
STRAY_SUBSIDIARY_SHARE = 0.05
NOT_HOME_COUNTRY_EFFECT = -0.8
MULTI_PRODUCT_SHARE = 0.01
MULTI_PRODUCT_EFFECT = 0.5

# Spelling families of customer_type that mean "End Customer" (ver_cus uses them).
END_CUSTOMER_SPELLINGS = ("End-Customer", "End Customer", "End-user", "END-CUSTOMER", "END CUSTOMER", "END-USER")
VER_CUS_AREAS = ("corporate / office", "education", "hotel & accommodation", "retail")
STRATEGIC_AREAS = ("corporate / office", "hotel & accommodation")

# ---------------------------------------------------------------------------------------------
# Category tables: (canonical, weight, label effect, "spelling:weight|spelling:weight|...")
# ---------------------------------------------------------------------------------------------

CUSTOMER_TYPES = [
    ("End Customer", 0.40, 0.9, "End Customer:40|End-Customer:35|End-user:25"),
    ("Specifier / Influencer", 0.17, 0.2, "Specifier / Influencer:45|Specifier/ Influencer:35|Specifier/Influencer:20"),
    ("Channel Partner", 0.12, -0.3, "Channel Partner:60|Channel Partners:40"),
    ("Service Partner", 0.05, -0.6, "Service Partner:1"),
    ("Solution Eco-Partner", 0.04, -0.3, "Solution Eco-Partner:1"),
    ("Installer/Contractor", 0.03, 0.1, "Installer/Contractor:55|Installer:45"),
    ("Engineer", 0.02, 0.3, "Engineer:1"),
    ("Architect/Consultant", 0.02, 0.1, "Architect/Consultant:55|Architect / Consultant:45"),
    ("Homeowner", 0.02, -1.2, "Homeowner:55|Home Owner:45"),
    ("Developer", 0.01, 0.4, "Developer:1"),
    ("Distributor", 0.02, -0.6, "Distributor:55|Dealer/Distributor:45"),
    ("Reseller", 0.01, -0.6, "Reseller:1"),
    ("Software/Solution Provider", 0.01, 0.0, "Software/Solution Provider:55|Software / Solution Provider:45"),
    ("Corporate", 0.01, 0.5, "Corporate:1"),
    ("Manager / Director", 0.01, 0.5, "Manager / Director:1"),
    ("Technician", 0.005, -0.4, "Technician:1"),
    ("Interior Designer", 0.005, 0.0, "Interior Designer:1"),
    ("Government", 0.005, 0.4, "Government:1"),
    ("HVAC", 0.005, 0.0, "HVAC:1"),
    ("Others", 0.04, -0.8, "Others:40|Other:30|Etc.:30"),
    ("Student", 0.01, -1.8, "Student:1"),
]

JOBS = [
    ("engineering", 0.20, 0.2, "engineering:45|Engineering:25|engineer:12|Engineer:8|ENGINEERING:5|engineers:5"),
    ("others", 0.12, -0.5, "others:40|other:30|Others:15|Other:10|etc.:5"),
    ("information technology", 0.09, 0.1, "information technology:45|Information Technology:20|IT:15|information_technology:10|"
     "it:5|Information technology:5"),
    ("purchasing", 0.07, 0.8, "purchasing:45|Purchasing:20|procurement:15|Procurement:10|purchase:10"),
    ("administrative", 0.06, -0.2, "administrative:50|Administrative:20|admin:15|administration:10|Admin:5"),
    ("operations", 0.06, 0.2, "operations:50|Operations:25|operation:15|OPERATIONS:10"),
    ("business development", 0.05, 0.3, "business development:45|Business Development:25|business_development:15|BD:10|bd:5"),
    ("sales", 0.05, -0.3, "sales:50|Sales:30|SALES:10|sales manager:10"),
    ("consulting", 0.04, -0.2, "consulting:50|Consulting:25|consultant:15|Consultant:10"),
    ("education", 0.04, -0.4, "education:55|Education:35|EDUCATION:10"),
    ("arts and design", 0.03, -0.5, "arts and design:50|Arts and Design:25|art and design:15|arts_and_design:10"),
    ("program and project management", 0.03, 0.6, "program and project management:45|Program and Project Management:20|"
     "program_and_project_management:15|project management:12|Project Management:8"),
    ("media and communication", 0.03, -0.4, "media and communication:40|media and communications:30|"
     "Media and Communication:15|media and communication(s):10|media_and_communication:5"),
    ("real estate", 0.02, 0.4, "real estate:55|Real Estate:30|real_estate:15"),
    ("marketing", 0.02, -0.3, "marketing:55|Marketing:35|MARKETING:10"),
    ("entrepreneurship", 0.02, 0.4, "entrepreneurship:50|Entrepreneurship:25|entrepreneur:15|Entrepreneur:10"),
    ("healthcare services", 0.015, 0.3, "healthcare services:50|Healthcare Services:25|health care services:15|"
     "healthcare_services:10"),
    ("research", 0.01, -0.5, "research:60|Research:40"),
    ("support", 0.01, -0.6, "support:60|Support:40"),
    ("finance", 0.01, 0.1, "finance:55|Finance:45"),
    ("accounting", 0.008, 0.0, "accounting:60|Accounting:40"),
    ("legal", 0.004, 0.0, "legal:1"),
    ("product management", 0.008, 0.1, "product management:60|Product Management:40"),
    ("human resources", 0.006, -0.4, "human resources:50|Human Resources:30|HR:20"),
    ("quality assurance", 0.005, 0.0, "quality assurance:50|Quality Assurance:30|QA:20"),
    ("community and social services", 0.004, -0.5, "community and social services:1"),
    ("military and protective services", 0.003, 0.2, "military and protective services:1"),
]
# free-text job titles: "<seniority> <function word>", each function word belongs to a canonical job
JOB_SENIORITY = ["Senior", "Junior", "Head of", "Lead", "Chief", "Assistant", "Associate", "Director of",
                 "Manager of", "VP", "Sr.", "Jefe de", "Gerente de", "Coordinador de", "Analista de",
                 "Supervisor", "Team Lead", "Specialist", "Officer", "Intern"]
JOB_FUNCTION_WORDS = {
    "engineering": ["Engineering", "Ingeniería"], "information technology": ["IT", "Systems", "TI"],
    "purchasing": ["Purchasing", "Procurement", "Compras"], "administrative": ["Administration"],
    "operations": ["Operations", "Facilities"], "business development": ["Business Development"],
    "sales": ["Sales", "Ventas"], "consulting": ["Consulting"], "education": ["Teaching"],
    "arts and design": ["Design"], "program and project management": ["Projects", "Proyectos"],
    "media and communication": ["Communications"], "real estate": ["Real Estate"],
    "marketing": ["Marketing"], "healthcare services": ["Nursing", "Radiology"],
    "research": ["Research"], "support": ["Support"], "finance": ["Finance"],
    "accounting": ["Accounting"], "human resources": ["HR"], "quality assurance": ["QA"],
}

INQUIRY_TYPES = [
    ("quotation or purchase consultation", 0.55, 0.6,
     "Quotation or purchase consultation:40|Quotation or Purchase Consultation:20|quotation_or_purchase_consultation:18|"
     "quotation or purchase consultation:8|Quotation:6|Request a quote:4|Purchase Consultation:4"),
    ("product information", 0.15, 0.0, "Product Information:45|product_information:25|Product info:15|product information:15"),
    ("usage or technical consultation", 0.08, -0.7,
     "Usage or technical consultation:40|Usage or Technical Consultation:25|usage_or_technical_consultation:20|"
     "usage or technical consultation:15"),
    ("technical support", 0.04, -1.0, "Technical Support:50|technical_support:30|Technical support:20"),
    ("request for partnership", 0.04, -0.5, "Request for Partnership:50|request_for_partnership:30|Request for partnership:20"),
    ("request a demo", 0.03, 0.3, "Request a Demo:50|request_a_demo:30|Request for Demo:20"),
    ("sales inquiry", 0.04, 0.4, "Sales Inquiry:55|sales_inquiry:30|Sales inquiries:15"),
    ("customer suggestions", 0.01, -0.8, "Customer Suggestions:50|customer_suggestions:30|Customer suggestions:20"),
    ("request for distributorship", 0.01, -0.7,
     "Request for Distributorship:55|request_for_distributorship:30|Request for distributorship:15"),
    ("services", 0.01, -0.3, "Services:50|Service:30|services:20"),
    ("trainings", 0.005, -0.8, "Trainings:60|Training:40"),
    ("event inquiry", 0.005, -0.6, "Event Inquiry:60|Event inquiry:40"),
    ("other", 0.04, -0.7, "Other:25|Others:20|other:10|other_:10|Etc.:20|ETC.:8|etc.:7"),
]
# free-text questions (often in other languages) found in inquiry_type; (text, canonical)
INQUIRY_FREE_TEXT = [
    ("Solicito cotización de pantallas", 0), ("¿Cuál es el precio del monitor?", 0),
    ("Quiero información sobre videowall", 1), ("Gostaria de um orçamento", 0),
    ("Preciso de suporte técnico", 3), ("Necesito una cotización", 0), ("Quisiera saber precios", 0),
    ("Probador de TV", 1), ("Solicitud de información", 1), ("Cotización", 0), ("Orçamento", 0),
    ("Informações sobre produtos", 1), ("Demande de devis", 0), ("Anfrage Angebot", 0),
    ("Richiesta preventivo", 0), ("display product", 1), ("TV interactive", 1),
    ("High inch 86 / 98 or 110", 0), ("Digital signage for stores", 1), ("Hotel TV question", 1),
    ("Precio de aire acondicionado", 0), ("¿Tienen distribuidores en Lima?", 8), ("Where to buy?", 6),
    ("Necesito soporte para mi pantalla", 3),
]

POSITIONS = [
    ("none", 0.30, -0.3, "none:1"),
    ("entry level", 0.10, -0.5, "entry level:45|Entry Level:30|entry_level:25"),
    ("manager", 0.13, 0.2, "manager:50|Manager:35|MANAGER:15"),
    ("director", 0.10, 0.5, "director:50|Director:35|DIRECTOR:15"),
    ("c-level executive", 0.07, 0.6, "c-level executive:40|C-Level Executive:25|c-level:15|C-level:10|c_level_executive:10"),
    ("vice president", 0.02, 0.5, "vice president:50|Vice President:30|VP:20"),
    ("partner", 0.03, 0.1, "partner:60|Partner:40"),
    ("associate/analyst", 0.05, -0.2, "associate/analyst:50|Associate/Analyst:30|associate / analyst:20"),
    ("trainee", 0.02, -1.0, "trainee:60|Trainee:30|TRAINEE:10"),
    ("end-user", 0.02, 0.1, "end-user:50|End-User:25|end user:25"),
    ("others", 0.08, -0.4, "others:40|other:30|Others:15|Other:10|etc.:5"),
    ("decision-maker", 0.02, 0.7, "decision-maker:50|Decision Maker:30|decision maker:20"),
    ("decision-influencer", 0.02, 0.2, "decision-influencer:60|Decision Influencer:40"),
    ("architect/consultant", 0.02, 0.0,
     "architect/consultant:50|Architect/Consultant:30|architect / consultant:15|ARCHITECT/CONSULTANT:5"),
    ("engineer", 0.02, 0.1, "engineer:55|Engineer:35|ENGINEER:10"),
    ("unpaid", 0.005, -1.4, "unpaid:1"),
    ("volunteer", 0.002, -1.4, "volunteer:1"),
]
POSITION_FREE_TEXT = [
    "gerente", "Gerente General", "jefe de compras", "lider de proyecto", "coordinador", "professor",
    "science teacher", "teacher", "principal", "it manager", "it director", "purchasing manager",
    "project manager", "Project Manager", "sales manager", "owner", "Owner", "propietario", "dueño",
    "socio", "diretor", "gerente de ti", "analista", "técnico", "engenheiro", "arquiteto",
    "administrador", "administrator", "cto", "cio", "cfo", "coo", "president", "President",
    "general manager", "General Manager", "managing director", "head of it", "head of procurement",
    "facility manager", "facilities manager", "operations manager", "buyer", "procurement", "consultor",
    "asesor", "supervisor", "Supervisor", "assistant", "secretary", "receptionist", "student",
    "estudiante", "hospital administrator", "chief engineer", "chief medical officer", "radiologist",
    "doctor", "IT Specialist", "system administrator", "network engineer", "designer",
    "interior designer", "installer", "contractor", "distributor", "reseller", "marketing manager",
    "brand manager",
]

TIMELINES = [  # canonical bucket, weight, effect (monotone in months), spellings
    ("less than 3 months", 0.55, 0.8,
     "less than 3 months:45|less_than_3_months:25|Less than 3 months:15|less then 3 months:10|within 3 months:5"),
    ("3 months ~ 6 months", 0.18, 0.2, "3 months ~ 6 months:45|3_months_~_6_months:25|less then 6 months:15|3 ~ 6 months:15"),
    ("6 months ~ 9 months", 0.07, -0.3, "6 months ~ 9 months:50|6_months_~_9_months:30|6 ~ 9 months:20"),
    ("9 months ~ 1 year", 0.06, -0.6,
     "9 months ~ 1 year:45|9_months_~_1_year:25|9 months - 1 year:20|9 months ~ 1 years:10"),
    ("more than a year", 0.09, -1.1,
     "more than a year:45|more_than_a_year:25|More than a year:15|more than 1 year:10|over a year:5"),
]
TIMELINE_NOTE_SHARE = 0.034  # of non-missing timelines: a sales rep's free-text note instead
TIMELINE_NOTES = [  # (phrase, label effect)
    ("being followed up", 0.0), ("Being followed up", 0.0), ("details shared with partner", 0.2),
    ("will contact again", -0.2), ("quotation sent", 0.8), ("Quotation sent to customer", 0.8),
    ("po expected", 1.2), ("customer requested proposal", 0.6), ("budget approved", 1.0),
    ("no budget", -1.5), ("the client is not having budget", -1.5), ("not interested", -2.0),
    ("spam lead", -3.0), ("no response from customer", -1.2), ("customer unreachable", -1.2),
    ("duplicate lead", -2.0), ("no requirement", -1.8), ("meeting scheduled", 0.6),
    ("demo done", 0.5), ("project on hold", -1.0),
]

BUSINESS_AREAS = [  # name, weight, effect, ver_win_rate_x
    ("corporate / office", 0.28, 0.3, 0.003079),
    ("retail", 0.13, 0.1, 0.000717),
    ("hotel & accommodation", 0.09, 0.2, 0.001183),
    ("hospital & health care", 0.07, 0.2, 0.000560),
    ("education", 0.11, 0.0, 0.000934),
    ("residential (home)", 0.07, -0.6, 0.000105),
    ("special purpose", 0.06, 0.0, 0.000248),
    ("factory", 0.05, 0.1, 0.000385),
    ("public facility", 0.05, 0.0, 0.000305),
    ("transportation", 0.03, 0.0, 0.000091),
    ("government department", 0.03, -0.1, 0.00004),
    ("power plant / renewable energy", 0.01, 0.3, 0.000012),
]
SUBAREAS = {
    "corporate / office": ["Engineering", "Manufacturing", "IT/Software", "Finance", "Bank", "Insurance",
                           "Other Corporate", "Law Firm", "Consulting Firm", "Telecommunication"],
    "retail": ["Shopping Mall", "Department Store", "Supermarket", "Convenience Store", "Fashion",
               "Car Dealership", "Restaurant", "Cafe", "Quick Service Restaurant"],
    "hotel & accommodation": ["Hotel", "Resort", "Casino Resort", "Motel", "Apartment Hotel", "Hostel", "Cruise"],
    "hospital & health care": ["General Hospital", "Clinic", "Medical Center", "Nursing Home", "Pharmacy",
                               "Laboratory", "Dental Clinic"],
    "education": ["K12 Kindergarten & Schools", "Higher Education (College & University)", "Academy",
                  "Training Center", "Library", "Public Institution"],
    "residential (home)": ["Apartment", "Single-family Housing", "Multi-unit Housing", "Villa", "Dormitory"],
    "special purpose": ["Church", "Mosque", "Museum", "Broadcasting & Media", "Control Room",
                        "Data Center", "Esports", "Stadium & Arena"],
    "factory": ["Manufacturing Factory", "Warehouse", "Logistics Center", "Food Processing",
                "Semiconductor", "Automotive Plant", "Chemical Plant"],
    "public facility": ["Public Office", "Sports Facility", "Community Center", "Convention Center",
                        "Exhibition Hall", "Theater", "Park"],
    "transportation": ["Airport", "Railway Station", "Bus Terminal", "Port", "Parking Lot", "Metro"],
    "government department": ["Government Office", "Military", "Police", "City Hall", "Court", "Embassy"],
    "power plant / renewable energy": ["Power Plant", "Solar Farm", "Wind Farm", "Energy Storage",
                                       "Utility", "Others", "Hydro Plant", "Substation"],
}
_N_SUBAREAS = len({s for v in SUBAREAS.values() for s in v})

# business units: train weight, score weight, effect
BUSINESS_UNITS = [("ID", 0.52, 0.56, 0.0), ("AS", 0.24, 0.21, 0.3), ("IT", 0.235, 0.23, -0.3),
                  ("Solution", 296 / REAL_TRAIN_ROWS, 0.0, -0.5), ("CM", 2 / REAL_TRAIN_ROWS, 0.0, 0.0)]

# product categories by business unit: (name, weight, family effect)
PRODUCTS = {
    "ID": [("video wall signage", 0.16, 0.4), ("interactive digital board", 0.14, 0.2), ("standard signage", 0.12, 0.1),
           ("oled signage", 0.06, 0.3), ("led signage", 0.12, 0.5), ("hotel tv", 0.07, 0.4),
           ("high brightness signage", 0.04, 0.2), ("uhd signage", 0.04, 0.0), ("signage care solution", 0.02, -0.3),
           ("webos", 0.01, -0.2), ("pro:centric", 0.01, 0.1), ("special signage", 0.02, 0.0),
           ("monitor signage", 0.02, 0.0), ("commercial tv", 0.04, 0.2), ("one:quick series", 0.03, 0.0),
           ("one:quick flex", 0.02, 0.0), ("transparent oled signage", 0.02, 0.3), ("pantalla led outdoor", 0.01, 0.4),
           ("interactive display", 0.02, 0.1), ("accessories", 0.01, -0.5)],
    "AS": [("multi-split", 0.20, 0.3), ("single-split", 0.18, 0.0), ("vrf", 0.18, 0.6), ("chiller", 0.08, 0.7),
           ("heating", 0.08, -0.2), ("ventilation", 0.05, 0.0), ("control", 0.03, 0.0), ("rac", 0.05, -0.4),
           ("ar condicionado residencial", 0.04, -0.6), ("teto ou cassete inverter", 0.04, 0.2),
           ("heat pump", 0.03, 0.1), ("air purifier", 0.02, -0.5), ("hvac", 0.02, 0.2)],
    "IT": [("monitor", 0.35, -0.3), ("laptop", 0.18, -0.5), ("projector", 0.10, -0.3), ("cloud device", 0.08, 0.2),
           ("medical display", 0.12, 0.3), ("thin client", 0.04, 0.1), ("all-in-one", 0.05, -0.2), ("tv", 0.08, -0.6)],
    "Solution": [("ess", 0.5, 0.0), ("solar", 0.3, 0.0), ("software solution", 0.1, 0.0), ("ev charger", 0.1, 0.0)],
    "CM": [("tv", 0.4, 0.0), ("washing machine", 0.3, 0.0), ("refrigerator", 0.3, 0.0)],
}
PRODUCT_GENERIC = [("etc.", 0.4, -0.6), ("others", 0.35, -0.6), ("other", 0.25, -0.6)]
PRODUCT_NEW_IN_SCORE = ["oled evo signage", "ultra stretch signage", "smart cloud monitor", "magnit micro led"]
# (business_area, product_category) pairs that get ver_pro = 1
VER_PRO_PAIRS = [
    ("corporate / office", "video wall signage"), ("corporate / office", "interactive digital board"),
    ("corporate / office", "vrf"), ("retail", "led signage"), ("retail", "standard signage"),
    ("hotel & accommodation", "hotel tv"), ("hotel & accommodation", "multi-split"),
    ("education", "interactive digital board"), ("hospital & health care", "medical display"),
    ("public facility", "led signage"), ("transportation", "high brightness signage"),
]

SUBCATEGORIES = {
    "ID": ["Video Wall", "Interactive Digital Board", "Standard", "OLED", "LED Signage", "Transparent OLED",
           "Hotel TV", "UHD Signage", "High Brightness", "Outdoor", "Stretch", "webOS", "Pro:Centric",
           "Commercial TV", "Special Signage", "All Medical Displays", "LED Cinema", "One:Quick"],
    "IT": ["Monitor", "UltraFine", "UltraWide", "UltraGear", "Medical Monitor", "Diagnostic Monitor",
           "Surgical Monitor", "Clinical Review", "Cloud Monitor", "Laptop", "gram", "Projector", "CineBeam",
           "Thin Client"],
    "AS": ["Multi V", "Multi V 5", "Multi V S", "Single Split", "Therma V", "Chiller", "Air Handling Unit",
           "ERV", "AC Smart", "Cassette", "Ducted", "Multi Split", "Residential Air Conditioner"],
    "Solution": ["ESS Home", "Solar Module", "EV Charger"],
    "CM": ["OLED TV", "Washer", "Refrigerator"],
}
MODEL_SERIES = {
    "ID": ["EF5F", "VL5G", "TR3BF", "UH5F", "XS4F", "SM5KE", "EW5G", "UL3J", "ST3", "XE4F", "UM3DG", "VM5E",
           "UH7F", "TC3D", "SL5F", "WX5F", "UT640S", "US660H", "LT330H", "UR640S"],
    "IT": ["MP88HV", "UL850", "UN880", "GN950", "HJ710S", "CN650N", "BN65", "ML5", "QP88D", "UP550"],
    "AS": ["ARUM", "ARNU", "ARUN", "ZUBW", "HU", "ABNQ", "AMNW", "ZBNW"],
    "Solution": ["RESU", "NeON", "EVD"],
    "CM": ["OLED", "WM", "GR"],
}
MODEL_SIZES = {"ID": [32, 43, 49, 55, 65, 75, 86, 98, 110, 136], "IT": [17, 22, 24, 27, 32, 34, 38, 49],
               "AS": [18, 24, 36, 48, 60, 80, 96, 120, 144], "Solution": [10, 13, 16], "CM": [55, 65, 77]}
MODEL_SUFFIX = ["-B", "-H", "-L", "-M", "-W", "-S", "", "", "-BH", "-BJ", "-N"]

# countries: name, weight, response_corporate, cities, alternative spellings
COUNTRIES = [
    ("India", 22, "LGEIL", "Mumbai|New Delhi|Bengaluru|Chennai|Hyderabad|Pune|Kolkata|Gurgaon|Noida|Ahmedabad", ""),
    ("United States", 14, "LGEUS", "New York|Los Angeles|Chicago|Houston|Dallas|Atlanta|Miami|Seattle|San Jose|Phoenix", "USA"),
    ("Brazil", 8, "LGESP", "São Paulo|Rio de Janeiro|Belo Horizonte|Curitiba|Manaus|Brasília|Porto Alegre", "Brasil"),
    ("Philippines", 4, "LGEPH", "Manila|Quezon City|Makati|Cebu City|Pasig|Taguig", ""),
    ("Spain", 3, "LGEES", "Madrid|Barcelona|Valencia|Sevilla|Bilbao", "España"),
    ("United Kingdom", 3, "LGEUK", "London|Manchester|Birmingham|Leeds|Glasgow", "UK"),
    ("Colombia", 3, "LGECB", "Bogotá|Medellín|Cali|Barranquilla", ""),
    ("Mexico", 3, "LGEMS", "Ciudad de México|Monterrey|Guadalajara|Puebla", "México"),
    ("Italy", 2.5, "LGEIS", "Milano|Roma|Torino|Napoli", "Italia"),
    ("Germany", 2.5, "LGEDG", "Berlin|München|Hamburg|Frankfurt", "Deutschland"),
    ("Saudi Arabia", 2.5, "LGESJ", "Riyadh|Jeddah|Dammam", ""),
    ("Chile", 2.5, "LGECL", "Santiago|Valparaíso|Concepción", ""),
    ("Peru", 2.5, "LGEPR", "Lima|Arequipa|Trujillo", "Perú"),
    ("Argentina", 1.5, "LGEAR", "Buenos Aires|Córdoba|Rosario", ""),
    ("Australia", 2, "LGEAP", "Sydney|Melbourne|Brisbane|Perth", ""),
    ("Panama", 1.5, "LGEPS", "Panamá|Colón", "Panamá"),
    ("France", 1.5, "LGEFS", "Paris|Lyon|Marseille", ""),
    ("Poland", 1.2, "LGEPL", "Warszawa|Kraków|Wrocław", ""),
    ("United Arab Emirates", 2, "LGEGF", "Dubai|Abu Dhabi|Sharjah", "UAE"),
    ("Egypt", 1, "LGEEG", "Cairo|Alexandria", ""),
    ("Singapore", 1.2, "LGESL", "Singapore", ""),
    ("Vietnam", 1.2, "LGEVH", "Ho Chi Minh City|Hanoi", "Viet Nam"),
    ("Indonesia", 1.2, "LGEIN", "Jakarta|Surabaya|Bandung", ""),
    ("Portugal", 0.8, "LGEPT", "Lisboa|Porto", ""),
    ("South Africa", 1.2, "LGESA", "Johannesburg|Cape Town|Durban", ""),
    ("Canada", 1.2, "LGECI", "Toronto|Vancouver|Montreal", ""),
    ("Turkey", 1, "LGETK", "Istanbul|Ankara", "Türkiye"),
    ("Ecuador", 0.8, "LGEEC", "Quito|Guayaquil", ""),
    ("Guatemala", 0.5, "LGEPS", "Guatemala City", ""),
    ("Costa Rica", 0.5, "LGEPS", "San José", ""),
    ("Dominican Republic", 0.4, "LGEPS", "Santo Domingo", ""),
    ("Honduras", 0.2, "LGEPS", "Tegucigalpa", ""),
    ("Venezuela", 0.3, "LGECB", "Caracas", ""),
    ("Bolivia", 0.2, "LGECL", "La Paz|Santa Cruz", ""),
    ("Uruguay", 0.2, "LGEAR", "Montevideo", ""),
    ("Paraguay", 0.2, "LGEAR", "Asunción", ""),
    ("Japan", 0.6, "LGEJP", "Tokyo|Osaka", ""),
    ("South Korea", 0.6, "LGEKR", "Seoul|Busan", "Korea"),
    ("Taiwan", 0.4, "LGETT", "Taipei", ""),
    ("Hong Kong", 0.4, "LGEHK", "Hong Kong", ""),
    ("China", 0.4, "LGECH", "Shanghai|Beijing|Shenzhen", ""),
    ("Thailand", 0.6, "LGETH", "Bangkok", ""),
    ("Malaysia", 0.6, "LGEML", "Kuala Lumpur|Penang", ""),
    ("Pakistan", 0.4, "LGEPK", "Karachi|Lahore", ""),
    ("Bangladesh", 0.3, "LGEIL", "Dhaka", ""),
    ("New Zealand", 0.3, "LGENZ", "Auckland", ""),
    ("Kazakhstan", 0.2, "LGEAK", "Almaty", ""),
    ("Russia", 0.3, "LGERA", "Moscow", ""),
    ("Ukraine", 0.2, "LGEUR", "Kyiv", ""),
    ("Netherlands", 0.6, "LGEBN", "Amsterdam|Rotterdam", ""),
    ("Belgium", 0.4, "LGEBN", "Brussels|Antwerp", ""),
    ("Sweden", 0.4, "LGESW", "Stockholm", ""),
    ("Denmark", 0.2, "LGESW", "Copenhagen", ""),
    ("Czech Republic", 0.3, "LGECZ", "Prague", ""),
    ("Hungary", 0.2, "LGEMK", "Budapest", ""),
    ("Romania", 0.3, "LGERO", "Bucharest", ""),
    ("Greece", 0.2, "LGEIS", "Athens", ""),
    ("Austria", 0.3, "LGEAG", "Vienna", ""),
    ("Switzerland", 0.3, "LGESZ", "Zürich|Geneva", ""),
    ("Israel", 0.4, "LGEYK", "Tel Aviv", ""),
    ("Nigeria", 0.4, "LGENI", "Lagos|Abuja", ""),
    ("Kenya", 0.3, "LGEEF", "Nairobi", ""),
    ("Morocco", 0.2, "LGEMC", "Casablanca", ""),
    ("Jordan", 0.2, "LGELF", "Amman", ""),
    ("Qatar", 0.3, "LGEGF", "Doha", ""),
    ("Kuwait", 0.2, "LGEGF", "Kuwait City", ""),
    ("Oman", 0.2, "LGEGF", "Muscat", ""),
    ("Ireland", 0.2, "LGEUK", "Dublin", ""),
    ("Algeria", 0.2, "LGEAS", "Algiers", ""),
    ("Ghana", 0.2, "LGENI", "Accra", ""),
    ("Iraq", 0.2, "LGELF", "Baghdad|Erbil", ""),
    ("Tunisia", 0.1, "LGEMC", "Tunis", ""),
]
# sales regions (as the dbt seed country_regions names them): label effect, countries
REGIONS = {
    "north america": (0.3, "United States|Canada"),
    "latin america": (-0.3, "Brazil|Colombia|Mexico|Chile|Peru|Argentina|Panama|Ecuador|Guatemala|Costa Rica|"
                            "Dominican Republic|Honduras|Venezuela|Bolivia|Uruguay|Paraguay"),
    "south asia": (0.4, "India|Pakistan|Bangladesh"),
    "europe": (0.0, "Spain|United Kingdom|Italy|Germany|France|Poland|Portugal|Russia|Ukraine|Netherlands|Belgium|"
                    "Sweden|Denmark|Czech Republic|Hungary|Romania|Greece|Austria|Switzerland|Ireland"),
    "middle east & africa": (-0.2, "Saudi Arabia|United Arab Emirates|Egypt|South Africa|Turkey|Israel|Nigeria|"
                                   "Kenya|Morocco|Jordan|Qatar|Kuwait|Oman|Algeria|Ghana|Iraq|Tunisia"),
    "asia pacific": (0.1, "Philippines|Australia|Singapore|Vietnam|Indonesia|Japan|South Korea|Taiwan|Hong Kong|"
                          "China|Thailand|Malaysia|New Zealand|Kazakhstan"),
}
COUNTRY_REGION = {c: r for r, (_, cs) in REGIONS.items() for c in cs.split("|")}
US_SLOT_FILLERS = ["CA", "TX", "NY", "FL", "IL", "GA", "NJ", "WA", "New York", "Houston", "Chicago", "Los Angeles"]
STREETS = ["Main", "Oak", "Park", "Maple", "Cedar", "Elm", "Washington", "Lake", "Hill", "Pine", "Church",
           "Market", "King", "Queen", "Station", "High", "Victoria", "Bridge", "Mill", "River", "Avenida Paulista",
           "Rua Augusta", "Calle Mayor", "MG Road", "Nehru Place", "Sheikh Zayed", "Orchard", "Gran Via",
           "Rizal", "Ayala", "Reforma", "Insurgentes", "Corrientes", "Providencia", "Larco", "Brigadeiro Faria Lima"]
STREET_SUFFIXES = ["Street", "St", "Road", "Rd", "Avenue", "Ave", "Blvd", "Lane", ""]
INDUSTRY_WORDS = ["Hospitality", "Retail", "Healthcare", "Education", "Manufacturing", "Engineering", "Construction"]
CITY_SYLLABLES = ["San", "ta", "ma", "ri", "lo", "ca", "ven", "dor", "bel", "pur", "ga", "na", "ko", "la", "ber",
                  "ton", "ville", "ra", "mi", "sa", "nu", "po", "ki", "do", "le", "mon", "tes", "ral", "gu", "bad"]


# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------

def _table(rows):
    """(canonical, weight, effect, "spelling:w|...") rows -> names, p, effects, variants."""
    names = [r[0] for r in rows]
    p = np.array([r[1] for r in rows], dtype=float)
    eff = np.array([r[2] for r in rows], dtype=float)
    variants = []
    for r in rows:
        parts = [s.rsplit(":", 1) for s in r[3].split("|")]
        spellings = [s for s, _ in parts]
        w = np.array([float(x) for _, x in parts])
        flat = w ** SCORE_SPELLING_FLATTEN
        variants.append((np.array(spellings, dtype=object), np.cumsum(w) / w.sum(), np.cumsum(flat) / flat.sum()))
    return names, p / p.sum(), eff, variants


def _choice(rng, n, p):
    """Index draw by probabilities p (vectorised inverse CDF)."""
    cdf = np.cumsum(p)
    cdf /= cdf[-1]
    return np.minimum(np.searchsorted(cdf, rng.random(n), side="right"), len(p) - 1)


def _spell(rng, canon, variants, score: bool = False):
    """Render canonical indices (-1 = missing) as raw spellings (score rows: the flatter score mix)."""
    out = np.full(canon.shape[0], None, dtype=object)
    u = rng.random(canon.shape[0])
    for k, (spellings, train_cdf, score_cdf) in enumerate(variants):
        cdf = score_cdf if score else train_cdf
        m = canon == k
        if m.any():
            out[m] = spellings[np.minimum(np.searchsorted(cdf, u[m], side="right"), len(spellings) - 1)]
    if score:  # the later form also writes some values in capitals: spellings training never saw
        up = (canon >= 0) & (rng.random(canon.shape[0]) < SCORE_UPPER_CASE_SHARE)
        out[up] = np.array([v.upper() for v in out[up]], dtype=object)
    return out


def _missing(rng, canon, rate):
    canon = canon.copy()
    canon[rng.random(canon.shape[0]) < rate] = -1
    return canon


def _typo(word: str, rng) -> str:
    i = int(rng.integers(1, max(2, len(word) - 1)))
    kind = int(rng.integers(3))
    if kind == 0 and i + 1 < len(word):
        return word[:i] + word[i + 1] + word[i] + word[i + 2:]  # swap
    if kind == 1:
        return word[:i] + word[i + 1:]  # drop
    return word[:i] + word[i] + word[i:]  # double


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _solve_intercept(eta, target):
    """b such that mean(sigmoid(b + eta)) == target (bisection, deterministic)."""
    lo, hi = -30.0, 30.0
    for _ in range(80):
        mid = (lo + hi) / 2
        if _sigmoid(mid + eta).mean() < target:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


# ---------------------------------------------------------------------------------------------
# the world: everything shared between train and score rows
# ---------------------------------------------------------------------------------------------

class _World:
    def __init__(self, rng, train_rows: int, score_rows: int):
        self.ct = _table(CUSTOMER_TYPES)
        self.job = _table(JOBS)
        self.inq = _table(INQUIRY_TYPES)
        self.pos = _table(POSITIONS)
        self.tl = _table(TIMELINES)
        self.end_customer = CUSTOMER_TYPES.index(next(r for r in CUSTOMER_TYPES if r[0] == "End Customer"))

        # job free-text tail
        tail, tail_canon = [], []
        for j, words in JOB_FUNCTION_WORDS.items():
            for w in words:
                for s in JOB_SENIORITY:
                    tail.append(f"{s} {w}")
                    tail_canon.append(self.job[0].index(j))
        self.job_tail = np.array(tail, dtype=object)
        self.job_tail_canon = np.array(tail_canon)

        # countries
        self.c_names = [c[0] for c in COUNTRIES]
        self.c_p = np.array([c[1] for c in COUNTRIES], dtype=float)
        self.c_p /= self.c_p.sum()
        # country effect: the region's plus a smaller country-level deviation
        self.c_region = [COUNTRY_REGION[c] for c in self.c_names]
        self.c_eff = np.array([REGIONS[r][0] for r in self.c_region]) + rng.normal(0.0, 0.4, len(COUNTRIES))
        self.c_eff[self.c_names.index("India")] = 0.5
        self.c_eff[self.c_names.index("United States")] = 0.4
        self.c_eff[self.c_names.index("Brazil")] = -0.5
        self.corp_codes = sorted({c[2] for c in COUNTRIES})
        self.c_corp = np.array([self.corp_codes.index(c[2]) for c in COUNTRIES])
        # a subsidiary's home country: the first (largest) country it serves
        self.corp_home = np.array([next(i for i, c in enumerate(COUNTRIES) if c[2] == code) for code in self.corp_codes])
        self.c_cities = [np.array(c[3].split("|"), dtype=object) for c in COUNTRIES]
        self.c_alt = [c[4] for c in COUNTRIES]

        # verticals and products
        self.ba_names = [b[0] for b in BUSINESS_AREAS]
        self.ba_p = np.array([b[1] for b in BUSINESS_AREAS])
        self.ba_p /= self.ba_p.sum()
        self.ba_eff = np.array([b[2] for b in BUSINESS_AREAS])
        self.ba_rate = np.array([b[3] for b in BUSINESS_AREAS])
        self.sub_names = [np.array(SUBAREAS[a], dtype=object) for a in self.ba_names]
        self.bu_names = [b[0] for b in BUSINESS_UNITS]
        self.bu_eff = np.array([b[3] for b in BUSINESS_UNITS])
        n_ba, n_bu, n_corp = len(self.ba_names), len(self.bu_names), len(self.corp_codes)
        # ver_win_ratio_per_bu: function of (area, unit); missing for IT and some pairs
        ratio = np.round(rng.uniform(0.002, 0.09, (n_ba, n_bu)), 6)
        ratio[:, self.bu_names.index("IT")] = np.nan
        ratio[:, self.bu_names.index("CM")] = np.nan
        ratio[self.ba_names.index("power plant / renewable energy"), :] = np.nan
        ratio[self.ba_names.index("government department"), self.bu_names.index("Solution")] = np.nan
        self.ratio_per_bu = ratio
        # com_reg_ver_win_rate: function of (area, unit, corporate); ~77 small rationals
        fracs = sorted({k / m for m in range(2, 80) for k in (1, 2, 3) if k < m})
        pool = np.array(fracs)[np.sort(rng.choice(len(fracs), 77, replace=False))]
        pool[-1] = 1.0
        tri = pool[np.where(rng.random((n_ba, n_bu, n_corp)) < 0.5, rng.integers(0, 77, (n_ba, n_bu, n_corp)),
                            np.minimum((rng.pareto(1.2, (n_ba, n_bu, n_corp)) * 6).astype(int), 76))]
        tri[rng.random(tri.shape) < 0.2] = np.nan
        self.com_reg = tri

        # products
        self.prod_names, self.prod_bu, self.prod_eff, self.prod_p = [], [], [], []
        for b, items in PRODUCTS.items():
            for name, w, e in items:
                self.prod_names.append(name)
                self.prod_bu.append(self.bu_names.index(b))
                self.prod_eff.append(e)
                self.prod_p.append(w)
        self.prod_bu = np.array(self.prod_bu)
        self.prod_eff = np.array(self.prod_eff)
        self.prod_p = np.array(self.prod_p)
        self.prod_typos = {i: _typo(n, rng) for i, n in enumerate(self.prod_names) if " " in n or len(n) > 6}
        self.ver_pro = {(self.ba_names.index(a), p) for a, p in VER_PRO_PAIRS}

        # product model names: a pool per business unit (index 0.. of each pool kept for train,
        # a tail reserved as "new models" only score rows use)
        self.models = {}
        for b in self.bu_names:
            sizes, series = MODEL_SIZES[b], MODEL_SERIES[b]
            n_pool = 290 if b in ("ID", "IT", "AS") else 12
            s = np.array(sizes)[rng.integers(0, len(sizes), n_pool)].astype(str).astype(object)
            ser = np.array(series, dtype=object)[rng.integers(0, len(series), n_pool)]
            suf = np.array(MODEL_SUFFIX, dtype=object)[rng.integers(0, len(MODEL_SUFFIX), n_pool)]
            if b == "AS":
                names = ser + s.astype(object) + np.array(["BT", "GA", "E5", "BH", "UT"], dtype=object)[
                    rng.integers(0, 5, n_pool)] + suf
            else:
                names = s + ser + suf
            brazil = rng.random(n_pool) < 0.03
            names[brazil] = names[brazil] + " (Brazil Only)"
            names = np.array(list(dict.fromkeys(names)), dtype=object)  # unique, order kept
            self.models[b] = names

        # owners
        self.n_owner_train = max(3, round(train_rows * OWNERS_PER_ROW))
        self.n_owner_new = max(2, round(score_rows * 0.1))
        n_own = self.n_owner_train + self.n_owner_new
        ids = rng.choice(max(1_300, int(n_own * 1.3)), n_own, replace=False)
        self.owner_ids = ids
        self.owner_w = rng.lognormal(0.0, 1.1, n_own)
        self.owner_home = _choice(rng, n_own, self.c_p)
        re = rng.normal(-0.15, 1.0, n_own)
        extreme = rng.random(n_own) < 0.03
        re[extreme] = rng.choice([-4.0, 3.0], extreme.sum()) / OWNER_RE_SD
        self.owner_re = re

        # customers: the train population (heavy repeaters) plus a pool of new ones for scoring
        n_special = 2
        n_rest = max(1, train_rows - round(train_rows * (CATCH_ALL_SHARE + ALL_CONVERTED_SHARE)))
        self.n_cust_train = max(2, round(n_rest * DISTINCT_CUSTOMERS_PER_ROW))
        self.n_cust_new = max(2, round(score_rows * 1.0))
        n_cust = n_special + self.n_cust_train + self.n_cust_new
        self.cust_ids = rng.choice(max(50_000, int(n_cust * 1.35)), n_cust, replace=False)
        # heavy-tail repeat weight: every customer gets one row, extra rows by these weights
        self.cust_w = np.minimum(rng.pareto(1.1, n_cust), 1_500.0) + 1e-3
        self.cust_re = rng.normal(0.0, 1.0, n_cust)
        self.cust_re[:n_special] = 0.0
        self.cust_owner = rng.choice(self.n_owner_train, n_cust, p=self.owner_w[:self.n_owner_train]
                                     / self.owner_w[:self.n_owner_train].sum())
        new_c = np.arange(n_cust) >= n_special + self.n_cust_train
        self.cust_owner[new_c] = np.where(
            rng.random(new_c.sum()) < 0.5,
            self.n_owner_train + rng.integers(0, self.n_owner_new, new_c.sum()),
            self.cust_owner[new_c])
        self.cust_enterprise = rng.random(n_cust) < 0.62
        has_hist = rng.random(n_cust) < 0.30
        hist = np.minimum(np.round(rng.lognormal(np.log(5.0), 1.6, n_cust)), 2_200.0)
        hist[rng.random(n_cust) < 0.08] = 0.0
        self.cust_hist = np.where(has_hist, hist, np.nan)
        self.cust_hist[:n_special] = np.nan
        self.cust_ba = np.where(rng.random(n_cust) < 0.7, _choice(rng, n_cust, self.ba_p), -1)


# ---------------------------------------------------------------------------------------------
# rows
# ---------------------------------------------------------------------------------------------

MISSING = {  # train, test
    "customer_country": (0.017, 0.0), "customer_type": (0.74, 0.28), "customer_job": (0.32, 0.27),
    "inquiry_type": (0.016, 0.25), "product_category": (0.33, 0.35), "product_subcategory": (0.84, 0.85),
    "product_modelname": (0.84, 0.89), "expected_timeline": (0.52, 0.46), "business_area": (0.69, 0.55),
    "business_subarea_given_area": (1 - 0.09 / 0.31, 1 - 0.34 / 0.45), "historical_existing_cnt": (0.77, 0.76),
    "lead_desc_placeholder": (0.18, 0.31),
}


def _customers_for_rows(rng, w: _World, n: int, split: str, drift: bool = False):
    """Customer index (into the world's customer arrays) for each row."""
    u = rng.random(n)
    idx = np.empty(n, dtype=np.int64)
    all_converted_share = SCORE_ALL_CONVERTED_SHARE if drift else ALL_CONVERTED_SHARE
    catch = u < CATCH_ALL_SHARE
    allconv = (u >= CATCH_ALL_SHARE) & (u < CATCH_ALL_SHARE + all_converted_share)
    rest = ~(catch | allconv)
    idx[catch], idx[allconv] = 0, 1
    n_rest = int(rest.sum())
    base = 2
    if split == "train":
        k = w.n_cust_train
        if n_rest >= k:  # each customer once, extra rows to the heavy repeaters
            extra = rng.choice(k, n_rest - k, p=w.cust_w[base:base + k] / w.cust_w[base:base + k].sum())
            pick = np.concatenate([np.arange(k), extra])
        else:
            pick = rng.choice(k, n_rest, replace=False)
        idx[rest] = base + rng.permutation(pick)
    else:
        # ~22% of the remaining score rows come from known (train) customers, mostly the repeaters
        known = rng.random(n_rest) < 0.22
        wt = w.cust_w[base:base + w.n_cust_train] ** 1.5
        sel = np.empty(n_rest, dtype=np.int64)
        sel[known] = base + rng.choice(w.n_cust_train, int(known.sum()), p=wt / wt.sum())
        k = w.n_cust_new
        wn = w.cust_w[base + w.n_cust_train:]
        sel[~known] = base + w.n_cust_train + rng.choice(k, int((~known).sum()), p=wn / wn.sum())
        idx[rest] = sel
    return idx


def _country_strings(rng, w: _World, country, n, split):
    """Raw `ADDRESS / CITY / COUNTRY` strings for true country indices."""
    names = np.array(w.c_names, dtype=object)
    upper = np.array([c.upper() for c in w.c_names], dtype=object)
    alt = np.array([a or c for a, c in zip(w.c_alt, w.c_names)], dtype=object)
    r = rng.random(n)
    k = np.where(r < 0.04, upper[country], np.where(r < 0.07, alt[country], names[country]))
    us = country == w.c_names.index("United States")
    slot = us & (rng.random(n) < 0.08)
    k[slot] = np.array(US_SLOT_FILLERS, dtype=object)[rng.integers(0, len(US_SLOT_FILLERS), int(slot.sum()))]

    # city: a known city of the country, a long-tail synthetic town, or empty
    rc = rng.random(n)
    city = np.full(n, "", dtype=object)
    known = rc < 0.50
    for ci in np.unique(country[known]):
        m = known & (country == ci)
        cities = w.c_cities[ci]
        cw = 1.0 / np.arange(1, len(cities) + 1)
        city[m] = cities[_choice(rng, int(m.sum()), cw)]
    syn = (rc >= 0.50) & (rc < 0.62)
    ns = int(syn.sum())
    syl = np.array(CITY_SYLLABLES, dtype=object)
    first = np.array([s.capitalize() for s in CITY_SYLLABLES], dtype=object)
    town = first[rng.integers(0, len(syl), ns)] + syl[rng.integers(0, len(syl), ns)]
    three = rng.random(ns) < 0.5
    town[three] = town[three] + syl[rng.integers(0, len(syl), int(three.sum()))]
    city[syn] = town

    # address: a street address in the first field (sometimes with an industry word glued on)
    has_addr = rng.random(n) < 0.15
    na = int(has_addr.sum())
    addr = np.full(n, "", dtype=object)
    num = rng.integers(1, 9_999, na).astype(str).astype(object)
    street = np.array(STREETS, dtype=object)[rng.integers(0, len(STREETS), na)]
    suffix = np.array(STREET_SUFFIXES, dtype=object)[rng.integers(0, len(STREET_SUFFIXES), na)]
    a = num + " " + street + " " + suffix
    glue = rng.random(na) < 0.08
    a[glue] = a[glue] + np.array(INDUSTRY_WORDS, dtype=object)[rng.integers(0, len(INDUSTRY_WORDS), int(glue.sum()))]
    addr[has_addr] = np.char.strip(a.astype(str)).astype(object)

    style = rng.random(n)
    spaced = city + " / " + k
    out = np.where(has_addr, addr + " / " + spaced,
                   np.where(style < 0.5, "/" + city + "/" + k, "/ " + spaced))
    # odd slash counts: 0, 1, 3, 4 slashes
    odd = rng.random(n)
    zero = odd < 0.006
    out[zero] = k[zero]
    one = (odd >= 0.006) & (odd < 0.016) & (city != "")
    out[one] = city[one] + " / " + k[one]
    three = (odd >= 0.016) & (odd < 0.020) & has_addr
    out[three] = addr[three] + " / " + "Suite " + rng.integers(1, 900, int(three.sum())).astype(str).astype(object) \
        + " / " + city[three] + " / " + k[three]
    four = (odd >= 0.020) & (odd < 0.022)
    out[four] = "/ / " + addr[four] + " / " + city[four] + " / " + k[four]
    corporate = (odd >= 0.022) & (odd < 0.026)
    out[corporate] = "Corporate /  /"
    miss = rng.random(n) < MISSING["customer_country"][split == "score"]
    out[miss] = None
    return out


def _rows(rng, w: _World, n: int, split: str, drift: bool = False,
          final=None) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """n lead rows; returns (frame of the 28 columns, linear predictor without intercept, special).
    drift (score rows only): the later-form spelling mix and a rarer all-converting id.
    final (a generate_final.FinalRound): rows in date order with the final round's six columns, and
    their share of the linear predictor."""
    t = split == "score"
    cust = _customers_for_rows(rng, w, n, split, drift)

    # owner: a repeat customer's own owner most of the time, else any owner
    if split == "train":
        pool_p = w.owner_w[:w.n_owner_train] / w.owner_w[:w.n_owner_train].sum()
        any_owner = _choice(rng, n, pool_p)
        use_own = (rng.random(n) < 0.7) & (cust >= 2)
        # make sure (almost) every owner shows up at least once, as in the real file
        k = min(w.n_owner_train, n)
        any_owner[:k] = rng.permutation(w.n_owner_train)[:k]
        any_owner = rng.permutation(any_owner)
    else:
        pool_p = w.owner_w / w.owner_w.sum()
        any_owner = np.where(rng.random(n) < 0.50, w.n_owner_train + rng.integers(0, w.n_owner_new, n),
                             _choice(rng, n, pool_p[:w.n_owner_train]))
        use_own = (rng.random(n) < 0.6) & (cust >= 2)
    owner = np.where(use_own, w.cust_owner[cust], any_owner)

    country = np.where(rng.random(n) < 0.85, w.owner_home[owner], _choice(rng, n, w.c_p))
    corp = w.c_corp[country].copy()
    stray = rng.random(n) < STRAY_SUBSIDIARY_SHARE
    corp[stray] = w.c_corp[_choice(rng, int(stray.sum()), w.c_p)]

    # business unit and product
    bu_p = np.array([b[2 if t else 1] for b in BUSINESS_UNITS])
    bu = _choice(rng, n, bu_p)
    prod = np.empty(n, dtype=np.int64)
    for b in range(len(w.bu_names)):
        m = bu == b
        if m.any():
            cand = np.flatnonzero(w.prod_bu == b)
            prod[m] = cand[_choice(rng, int(m.sum()), w.prod_p[cand])]

    # vertical: mostly the customer's, missing at the split's rate
    ba = np.where((rng.random(n) < 0.8) & (cust >= 2), w.cust_ba[cust], _choice(rng, n, w.ba_p))
    ba_missing_target = MISSING["business_area"][t]
    # calibrate the missing share: customers without a vertical already give some missing rows
    have = ba >= 0
    need = 1 - ba_missing_target
    keep_p = min(1.0, need / max(have.mean(), 1e-9))
    ba = np.where(have & (rng.random(n) < keep_p), ba, -1)
    fill = (ba < 0) & (rng.random(n) < max(0.0, need - (ba >= 0).mean()) / max((ba < 0).mean(), 1e-9))
    ba[fill] = _choice(rng, int(fill.sum()), w.ba_p)

    if t:  # in the test file IT leads (and some ID leads) rarely come from the strategic verticals
        strat = np.isin(ba, [w.ba_names.index(x) for x in STRATEGIC_AREAS])
        redraw = strat & (rng.random(n) < np.where(bu == w.bu_names.index("IT"), 0.85, 0.05))
        others = [i for i, x in enumerate(w.ba_names) if x not in STRATEGIC_AREAS]
        ba[redraw] = np.array(others)[_choice(rng, int(redraw.sum()), w.ba_p[others])]

    sub = np.full(n, None, dtype=object)
    has_sub = (ba >= 0) & (rng.random(n) >= MISSING["business_subarea_given_area"][t])
    for a in range(len(w.ba_names)):
        m = has_sub & (ba == a)
        if m.any():
            sub[m] = w.sub_names[a][rng.integers(0, len(w.sub_names[a]), int(m.sum()))]

    # canonical categorical facts
    ct = _missing(rng, _choice(rng, n, w.ct[1]), MISSING["customer_type"][t])
    job = _missing(rng, _choice(rng, n, w.job[1]), MISSING["customer_job"][t])
    inq = _missing(rng, _choice(rng, n, w.inq[1]), MISSING["inquiry_type"][t])
    pos = _choice(rng, n, w.pos[1])
    tl = _missing(rng, _choice(rng, n, w.tl[1]), MISSING["expected_timeline"][t])
    bant = np.array([0.0, 0.25, 0.5, 0.75, 1.0])[_choice(rng, n, [0.06, 0.12, 0.2, 0.2, 0.42])]
    placeholder = rng.random(n) < MISSING["lead_desc_placeholder"][t]
    desc_len = np.minimum(np.round(rng.lognormal(np.log(90), 0.9, n)), 1_100).astype(np.int64)
    desc_len = np.maximum(desc_len, 4)
    desc_len[placeholder] = 3
    enterprise = w.cust_enterprise[cust]
    hist = w.cust_hist[cust].copy()
    # per-customer history, thinned to the split's missing rate
    present_share = (~np.isnan(hist)).mean()
    want = 1 - MISSING["historical_existing_cnt"][t]
    fill_u = rng.random(n)
    if present_share > want:
        hist[fill_u < 1 - want / present_share] = np.nan
    else:  # too few customers with history in this draw: give some rows one
        gap = np.isnan(hist) & (cust >= 2)
        add = gap & (fill_u < (want - present_share) / max(gap.mean(), 1e-9))
        hist[add] = np.minimum(np.round(rng.lognormal(np.log(5.0), 1.6, int(add.sum()))), 2_200.0)

    # --- raw strings ---
    ct_raw = _spell(rng, ct, w.ct[3], drift)
    job_raw = _spell(rng, job, w.job[3], drift)
    tail = (job >= 0) & (rng.random(n) < 0.021)
    ti = rng.integers(0, len(w.job_tail), int(tail.sum()))
    job_raw[tail] = w.job_tail[ti]
    job[tail] = w.job_tail_canon[ti]
    inq_raw = _spell(rng, inq, w.inq[3], drift)
    free = (inq >= 0) & (rng.random(n) < 0.004)
    fi = rng.integers(0, len(INQUIRY_FREE_TEXT), int(free.sum()))
    inq_raw[free] = np.array([f[0] for f in INQUIRY_FREE_TEXT], dtype=object)[fi]
    inq[free] = np.array([f[1] for f in INQUIRY_FREE_TEXT])[fi]
    pos_raw = _spell(rng, pos, w.pos[3], drift)
    pfree = rng.random(n) < 0.012
    pos_raw[pfree] = np.array(POSITION_FREE_TEXT, dtype=object)[rng.integers(0, len(POSITION_FREE_TEXT), int(pfree.sum()))]
    pos_eff = w.pos[2][pos]
    pos_eff[pfree] = 0.0
    tl_raw = _spell(rng, tl, w.tl[3], drift)
    tl_eff = np.where(tl >= 0, w.tl[2][np.maximum(tl, 0)], 0.0)
    note = (tl >= 0) & (rng.random(n) < TIMELINE_NOTE_SHARE)
    nn = int(note.sum())
    ni = _choice(rng, nn, np.linspace(2.0, 0.5, len(TIMELINE_NOTES)))
    phrase = np.array([p for p, _ in TIMELINE_NOTES], dtype=object)[ni]
    day = rng.integers(1, 29, nn).astype(str).astype(object)
    month = rng.integers(1, 13, nn).astype(str).astype(object)
    form = rng.random(nn)
    phrase = np.where(form < 0.45, phrase, np.where(form < 0.6, phrase + ".",
                      np.where(form < 0.8, phrase + " - " + day + "/" + month, phrase + " on " + day + "." + month)))
    tl_raw[note] = phrase
    tl_eff[note] = np.array([e for _, e in TIMELINE_NOTES])[ni]

    # product_category: single product, typo, generic, comma-joined list, or missing
    pc_raw = np.array(w.prod_names, dtype=object)[prod]
    pc_eff = w.prod_eff[prod].copy()
    r = rng.random(n)
    typo_rows = r < 0.006
    typo_idx = np.array(sorted(w.prod_typos), dtype=np.int64)
    typo_map = np.array([w.prod_typos.get(i, w.prod_names[i]) for i in range(len(w.prod_names))], dtype=object)
    pc_raw[typo_rows & np.isin(prod, typo_idx)] = typo_map[prod[typo_rows & np.isin(prod, typo_idx)]]
    generic = (r >= 0.006) & (r < 0.036)
    gi = _choice(rng, int(generic.sum()), [g[1] for g in PRODUCT_GENERIC])
    pc_raw[generic] = np.array([g[0] for g in PRODUCT_GENERIC], dtype=object)[gi]
    pc_eff[generic] = -0.6
    multi = (r >= 0.036) & (r < 0.036 + MULTI_PRODUCT_SHARE)
    for b in range(len(w.bu_names)):
        m = multi & (bu == b)
        cand = np.flatnonzero(w.prod_bu == b)
        if not m.any() or len(cand) < 2:
            continue
        nm = int(m.sum())
        second = cand[_choice(rng, nm, w.prod_p[cand])]
        third = cand[_choice(rng, nm, w.prod_p[cand])]
        sep = np.where(rng.random(nm) < 0.6, ",", ", ").astype(object)
        names = np.array(w.prod_names, dtype=object)
        joined = names[prod[m]] + sep + names[second]
        add3 = (rng.random(nm) < 0.3) & (third != second) & (third != prod[m])
        joined[add3] = joined[add3] + sep[add3] + names[third[add3]]
        same = second == prod[m]
        joined[same] = names[prod[m][same]]
        pc_raw[m] = joined
        pc_eff[m] = pc_eff[m] + MULTI_PRODUCT_EFFECT
    if t:
        new = rng.random(n) < 0.01
        pc_raw[new] = np.array(PRODUCT_NEW_IN_SCORE, dtype=object)[rng.integers(0, len(PRODUCT_NEW_IN_SCORE), int(new.sum()))]
    pc_missing = rng.random(n) < MISSING["product_category"][t]
    pc_raw[pc_missing] = None
    pc_eff[pc_missing] = 0.0

    # subcategory and model name: free text, mixed case
    sc_raw = np.full(n, None, dtype=object)
    mn_raw = np.full(n, None, dtype=object)
    has_sc = rng.random(n) >= MISSING["product_subcategory"][t]
    has_mn = rng.random(n) >= MISSING["product_modelname"][t]
    for b, bname in enumerate(w.bu_names):
        m = has_sc & (bu == b)
        if m.any():
            opts = np.array(SUBCATEGORIES[bname], dtype=object)
            sc_raw[m] = opts[_choice(rng, int(m.sum()), 1.0 / np.arange(1, len(opts) + 1) ** 0.7)]
        m = has_mn & (bu == b)
        if m.any():
            pool = w.models[bname]
            n_known = max(1, int(len(pool) * 0.85))
            nm = int(m.sum())
            pick = _choice(rng, nm, 1.0 / np.arange(1, n_known + 1) ** 0.9)
            if t:  # a few models train never saw
                newm = rng.random(nm) < 0.12
                pick[newm] = n_known + rng.integers(0, max(1, len(pool) - n_known), int(newm.sum()))
                pick = np.minimum(pick, len(pool) - 1)
            mn_raw[m] = pool[pick]
    case = rng.random(n)
    sc_up = has_sc & (case < 0.05)
    sc_raw[sc_up] = np.array([s.upper() for s in sc_raw[sc_up]], dtype=object) if sc_up.any() else sc_raw[sc_up]
    sc_low = has_sc & (case >= 0.05) & (case < 0.12)
    sc_raw[sc_low] = np.array([s.lower() for s in sc_raw[sc_low]], dtype=object) if sc_low.any() else sc_raw[sc_low]

    # derived columns (the rules of the real files)
    ba_name = np.array(w.ba_names + [None], dtype=object)[np.where(ba >= 0, ba, len(w.ba_names))]
    bu_name = np.array(w.bu_names, dtype=object)[bu]
    present = ba >= 0
    ver_win_rate_x = np.where(present, w.ba_rate[np.maximum(ba, 0)], np.nan)
    ver_win_ratio = np.where(present, w.ratio_per_bu[np.maximum(ba, 0), bu], np.nan)
    com_reg = np.where(present, w.com_reg[np.maximum(ba, 0), bu, corp], np.nan)
    strategic_area = np.isin(ba_name, STRATEGIC_AREAS)
    id_s = np.where(strategic_area & (bu_name == "ID"), 1.0, np.nan)
    it_s = np.where(strategic_area & (bu_name == "IT"), 1.0, np.nan)
    idit = np.where((id_s == 1) | (it_s == 1), 1.0, np.nan)
    ver_cus = (np.isin(ct_raw, END_CUSTOMER_SPELLINGS) & np.isin(ba_name, VER_CUS_AREAS)).astype(np.int64)
    pairs = np.zeros(n, dtype=bool)
    for a, p in VER_PRO_PAIRS:
        pairs |= (ba_name == a) & (pc_raw == p)
    ver_pro = pairs.astype(np.int64)

    country_raw = _country_strings(rng, w, country, n, split)

    frame = pd.DataFrame({
        "bant_submit": bant,
        "customer_country": country_raw,
        "business_unit": bu_name,
        "com_reg_ver_win_rate": com_reg,
        "customer_idx": w.cust_ids[cust].astype(np.int64),
        "customer_type": ct_raw,
        "enterprise": np.where(enterprise, "Enterprise", "SMB"),
        "historical_existing_cnt": hist,
        "id_strategic_ver": id_s,
        "it_strategic_ver": it_s,
        "idit_strategic_ver": idit,
        "customer_job": job_raw,
        "lead_desc_length": desc_len,
        "inquiry_type": inq_raw,
        "product_category": pc_raw,
        "product_subcategory": sc_raw,
        "product_modelname": mn_raw,
        "customer_country.1": country_raw,
        "customer_position": pos_raw,
        "response_corporate": np.array(w.corp_codes, dtype=object)[corp],
        "expected_timeline": tl_raw,
        "ver_cus": ver_cus,
        "ver_pro": ver_pro,
        "ver_win_rate_x": ver_win_rate_x,
        "ver_win_ratio_per_bu": ver_win_ratio,
        "business_area": ba_name,
        "business_subarea": sub,
        "lead_owner": w.owner_ids[owner].astype(np.int64),
    }, columns=list(LEAD_COLUMN_NAMES))

    # --- the label's linear predictor, on cleaned meaning ---
    meaning = (
        np.where(ct >= 0, w.ct[2][np.maximum(ct, 0)], 0.0)
        + np.where(job >= 0, w.job[2][np.maximum(job, 0)], 0.0)
        + np.where(inq >= 0, w.inq[2][np.maximum(inq, 0)], 0.0)
        + pos_eff
        + tl_eff
        + 1.2 * (bant - 0.5)
        + w.c_eff[country]
        + np.where(w.corp_home[corp] == country, 0.0, NOT_HOME_COUNTRY_EFFECT)
        + np.where(present, w.ba_eff[np.maximum(ba, 0)], -0.2)
        + w.bu_eff[bu]
        + pc_eff
        + np.where(placeholder, -0.6, 0.2 * np.log(desc_len / 90.0))
        + np.where(enterprise, 0.2, -0.1)
        + np.where(np.isnan(hist), 0.0, 0.25 * np.log1p(np.nan_to_num(hist)) - 0.2)
        + 0.4 * ver_cus
    )
    eta = (EFFECT_SCALE * meaning + CUSTOMER_RE_SD * w.cust_re[cust] + OWNER_RE_SD * w.owner_re[owner]
           + rng.normal(0.0, NOISE_SD, n))
    special = np.where(cust == 0, 1, np.where(cust == 1, 2, 0))
    if final is not None:
        frame, eta, special = final.extend(split, frame, eta, special, cust=cust, country=country, bu=bu, inq=inq,
                                           placeholder=placeholder, bant=bant, enterprise=enterprise, hist=hist,
                                           drift=drift)
    return frame, eta, special


def _labels(rng, eta, special, b0):
    p = _sigmoid(b0 + eta)
    p = np.where(special == 1, CATCH_ALL_RATE, np.where(special == 2, 1.0, p))
    return rng.random(eta.shape[0]) < p


def _intercept(eta, special, n):
    """Intercept giving the train-like positive rate overall, given the two special ids."""
    rest = special == 0
    n_pos = TRAIN_POSITIVE_RATE * n - (special == 2).sum() - CATCH_ALL_RATE * (special == 1).sum()
    target = min(max(n_pos / max(rest.sum(), 1), 1e-4), 0.9)
    return _solve_intercept(eta[rest], target)


def _write_csv(frame: pd.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False, encoding="utf-8", lineterminator="\n")


def generate(out_dir: Path, train_rows: int = REAL_TRAIN_ROWS, score_rows: int = REAL_SCORE_ROWS, seed: int = 0,
             truth_path: Path | None = None, score_prevalence: float | None = None,
             score_drift: bool = False, schema: str = "qualifier") -> dict:
    """Writes out_dir/train.csv and out_dir/submission.csv; returns {"train_path":..., "score_path":...,
    "train_rows":..., "score_rows":..., "train_positive_rate":..., "seconds":...}

    truth_path: also write `id,is_converted` (0/1) for the score rows.
    score_prevalence: rebalance the score rows to this positive rate (e.g. 0.33 for the competition's
    1:2 test file); by default they have the train-like rate.
    score_drift: the score rows come through a later version of the web form (flatter spelling
    mix, ~15% of values in capitals, the all-converting id rarer). Off by default, so that score
    rows are drawn like training rows and out-of-fold metrics predict score-row metrics; on, it
    shows what the feature store's normalisation buys when the input drifts.
    schema: "qualifier" (the 28 columns) or "final" (also the final round's six published columns,
    input_format.FINAL_COLUMNS, before is_converted: rows in date order, score rows the later leads,
    the label depending on them too; see generate_final).
    """
    started = time.perf_counter()
    if train_rows < 1 or score_rows < 1:
        raise LeadscoreError(f"row counts must be positive, got train_rows={train_rows}, score_rows={score_rows}")
    if score_prevalence is not None and not 0.0 < score_prevalence < 1.0:
        raise LeadscoreError(f"score_prevalence must be in (0, 1), got {score_prevalence}")
    if schema not in SCHEMAS:
        raise LeadscoreError(f"schema must be one of {', '.join(SCHEMAS)}, got {schema!r}")
    out_dir = Path(out_dir)
    rng = np.random.default_rng(seed)
    world = _World(rng, train_rows, score_rows)
    final = None
    if schema == "final":
        from leadscore.generate_final import FinalRound

        final = FinalRound(seed, world, train_rows, score_rows)

    train, eta, special = _rows(rng, world, train_rows, "train", final=final)
    b0 = _intercept(eta, special, train_rows)
    train[LABEL_COLUMN] = _labels(rng, eta, special, b0)

    # score rows: same process, same intercept (a lead converts with the same probability in both
    # files); the prevalence follows from the score mix (about 7-8%) unless score_prevalence is given
    if score_prevalence is None:
        score, s_eta, s_special = _rows(rng, world, score_rows, "score", score_drift, final)
        y = _labels(rng, s_eta, s_special, b0)
    else:
        n_pos = min(score_rows - 1, max(1, round(score_prevalence * score_rows))) if score_rows > 1 else 1
        n_neg = score_rows - n_pos
        m = int(score_rows * max(1.0, 1.5 * n_pos / (TRAIN_POSITIVE_RATE * score_rows),
                                 1.5 * n_neg / ((1 - TRAIN_POSITIVE_RATE) * score_rows))) + 50
        score, s_eta, s_special = _rows(rng, world, m, "score", score_drift, final)
        y = _labels(rng, s_eta, s_special, b0)
        pos_i, neg_i = np.flatnonzero(y), np.flatnonzero(~y)
        if len(pos_i) < n_pos or len(neg_i) < n_neg:
            raise LeadscoreError(f"could not reach score_prevalence={score_prevalence} (internal sampling)")
        keep = np.sort(np.concatenate([rng.choice(pos_i, n_pos, replace=False),
                                       rng.choice(neg_i, n_neg, replace=False)]))
        score, y = score.iloc[keep].reset_index(drop=True), y[keep]

    ids = rng.choice(max(60_000, 12 * score_rows), score_rows, replace=False).astype(np.int64)
    score.insert(0, ID_COLUMN, ids)
    score[LABEL_COLUMN] = ""

    train_path, score_path = out_dir / "train.csv", out_dir / "submission.csv"
    _write_csv(train, train_path)
    _write_csv(score, score_path)
    if truth_path is not None:
        _write_csv(pd.DataFrame({ID_COLUMN: ids, LABEL_COLUMN: y.astype(np.int64)}), Path(truth_path))

    return {
        "train_path": str(train_path),
        "score_path": str(score_path),
        "truth_path": str(truth_path) if truth_path is not None else None,
        "train_rows": int(train_rows),
        "score_rows": int(score_rows),
        "train_positive_rate": float(train[LABEL_COLUMN].mean()),
        "score_positive_rate": float(y.mean()),
        "seconds": round(time.perf_counter() - started, 3),
    }
