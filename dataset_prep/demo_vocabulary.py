"""The words of the GENERATED demo: its hidden attributes (each with a colour, movie and music
genres and mood words) and each domain's wording of items and reviews. Item text and review text
are written from these, so they reveal an item's hidden attributes (dataset_prep/demo.py)."""

from __future__ import annotations

AUX_CATEGORY = "Movies_and_TV"
TARGET_CATEGORY = "CDs_and_Vinyl"

# (name, colour, movie genres, music genres, mood words). Genres and mood words are tied to the
# attribute, so item text and review text reveal the hidden attributes.
ATTRIBUTES = [
    (
        "dark",
        (40, 30, 60),
        ("Thriller", "Horror"),
        ("Metal", "Gothic Rock"),
        ("dark", "brooding", "sinister", "haunting", "grim", "menacing"),
    ),
    (
        "upbeat",
        (250, 200, 40),
        ("Comedy", "Musicals"),
        ("Pop", "Dance"),
        ("upbeat", "cheerful", "bouncy", "sunny", "catchy", "joyful"),
    ),
    (
        "romantic",
        (220, 60, 110),
        ("Romance", "Melodrama"),
        ("R&B", "Soul"),
        ("romantic", "tender", "heartfelt", "sensual", "loving", "intimate"),
    ),
    (
        "epic",
        (200, 80, 20),
        ("Action", "Fantasy"),
        ("Symphonic", "Soundtracks"),
        ("epic", "grand", "sweeping", "heroic", "majestic", "thunderous"),
    ),
    (
        "retro",
        (150, 110, 70),
        ("Westerns", "Classic Cinema"),
        ("Oldies", "Classic Rock"),
        ("retro", "vintage", "nostalgic", "old-school", "timeless", "classic"),
    ),
    (
        "experimental",
        (60, 200, 190),
        ("Art House", "Independent"),
        ("Avant-Garde", "Electronic"),
        ("experimental", "strange", "abstract", "daring", "surreal", "unconventional"),
    ),
    (
        "calm",
        (110, 170, 230),
        ("Nature", "Documentary"),
        ("Ambient", "New Age"),
        ("calm", "gentle", "soothing", "quiet", "peaceful", "mellow"),
    ),
    (
        "playful",
        (120, 210, 80),
        ("Animation", "Kids & Family"),
        ("Children's Music", "Novelty"),
        ("playful", "quirky", "silly", "whimsical", "funny", "zany"),
    ),
]
K = len(ATTRIBUTES)

# Per domain: root category, main_category, kind word, aspect nouns, format, title nouns, stores.
DOMAIN_WORDS = {
    AUX_CATEGORY: {
        "root": "Movies & TV",
        "main": "Movies & TV",
        "kind": "film",
        "format": "DVD",
        "aspects": ("plot", "acting", "score", "ending", "cinematography", "pacing", "dialogue"),
        "verb": "looks",
        "nouns": (
            "Harbor",
            "Night",
            "Journey",
            "Empire",
            "Garden",
            "Stranger",
            "River",
            "Summer",
            "Frontier",
            "Signal",
            "Island",
            "Promise",
            "Mirror",
            "Storm",
            "Letter",
            "Road",
        ),
        "stores": (
            "Northlight Pictures",
            "Bluefield Studios",
            "Cedar Films",
            "Granite Media",
            "Lantern Entertainment",
            "Paloma Home Video",
        ),
    },
    TARGET_CATEGORY: {
        "root": "CDs & Vinyl",
        "main": "Digital Music",
        "kind": "album",
        "format": "Audio CD",
        "aspects": (
            "singing",
            "production",
            "songwriting",
            "melody",
            "groove",
            "mix",
            "arrangement",
        ),
        "verb": "sounds",
        "nouns": (
            "Echoes",
            "Skylines",
            "Hearts",
            "Machines",
            "Waves",
            "Lights",
            "Stories",
            "Horizons",
            "Rooms",
            "Seasons",
            "Wires",
            "Colours",
            "Tides",
            "Roads",
            "Dreams",
        ),
        "stores": (
            "The Velvet Owls",
            "Mara Quinn",
            "Static Parade",
            "Jonah Reyes Trio",
            "Glass Harbor",
            "Nadia Sol",
            "The Low Orchard",
            "Kestrel",
        ),
    },
}

# Review wording by star rating (index 0 = 1 star).
OPENERS = (
    ("Total waste of money.", "Could not finish it.", "Really disliked this."),
    ("Not for me.", "Rather disappointing overall.", "Expected much more."),
    ("It was okay.", "Mixed feelings here.", "Decent but forgettable."),
    ("Pretty good one.", "Enjoyed this a lot.", "Worth the price."),
    ("Absolutely loved it!", "An instant favourite.", "Simply wonderful."),
)
SENTIMENT = (
    ("awful", "terrible", "unbearable", "boring", "dreadful"),
    ("weak", "dull", "disappointing", "flat", "tiresome"),
    ("okay", "uneven", "average", "passable", "fine"),
    ("good", "enjoyable", "solid", "pleasant", "nice"),
    ("superb", "wonderful", "brilliant", "fantastic", "stunning"),
)
REVIEW_TITLES = (
    ("One Star", "Awful", "Avoid"),
    ("Two Stars", "Disappointing", "Meh"),
    ("Three Stars", "It's okay", "Average"),
    ("Four Stars", "Good", "Worth it"),
    ("Five Stars", "Excellent", "Love it"),
)
FILLER = (
    "Arrived quickly and well packaged.",
    "Would recommend it to friends.",
    "Bought it as a gift.",
    "My family had opinions about it.",
    "Glad I finally got a copy.",
    "The case was a bit scratched.",
    "Took a while to get into it.",
    "Came back to it twice.",
)
DESC_TAILS = (
    "that rewards a second visit",
    "from a team at the top of its craft",
    "remastered for this edition",
    "with a booklet of liner notes",
    "that found its audience slowly",
    "made on a modest budget",
)
