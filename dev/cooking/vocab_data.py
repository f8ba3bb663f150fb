"""Ingredients, flavours and cuisines the cooking corpus is built from (written for tui-gen).

The tables are data, not logic: corpus.py combines them with the dish types of dish_data.py into
thousands of named dishes. Keeping them apart lets a reader check or extend the food without
reading the generator, and lets the tests count the variety directly.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Ingredient:
    """Something a dish can be built around.

    `title` is the word used inside dish names ("Black Bean" in "Black Bean Tacos"), `noun` the
    plain plural used in prose ("black beans") and `item` how it appears in an ingredient list.
    `forms` holds other list spellings a dish type may ask for ("mince", "quick" cuts...), and
    `qty` quantity overrides keyed by portion name (see dish_data.PORTIONS).
    """

    key: str
    cat: str
    title: str
    noun: str
    item: str
    forms: dict[str, str] = field(default_factory=dict)
    qty: dict[str, str] = field(default_factory=dict)


def _i(
    key: str, cat: str, title: str, noun: str, item: str | None = None, **kw: object
) -> Ingredient:
    forms = {k: v for k, v in kw.items() if k != "qty" and isinstance(v, str)}
    qty = kw.get("qty", {})
    assert isinstance(qty, dict)
    return Ingredient(key, cat, title, noun, item or noun, forms, qty)


INGREDIENTS: dict[str, Ingredient] = {
    i.key: i
    for i in [
        # poultry and meat
        _i(
            "chicken",
            "poultry",
            "Chicken",
            "chicken",
            "boneless chicken thighs",
            mince="chicken mince",
            whole="whole chicken",
            qty={"roast": "1.6 kg"},
        ),
        _i(
            "turkey",
            "poultry",
            "Turkey",
            "turkey",
            "turkey breast",
            mince="turkey mince",
            whole="turkey crown",
            qty={"roast": "1.5 kg"},
        ),
        _i("duck", "poultry", "Duck", "duck", "duck breasts", qty={"main": "4"}),
        _i(
            "beef",
            "meat",
            "Beef",
            "beef",
            "beef chuck",
            quick="beef sirloin steak",
            mince="beef mince",
            whole="beef topside joint",
        ),
        _i(
            "lamb",
            "meat",
            "Lamb",
            "lamb",
            "lamb shoulder",
            quick="lamb leg steaks",
            mince="lamb mince",
            whole="leg of lamb",
            qty={"roast": "1.8 kg"},
        ),
        _i(
            "pork",
            "meat",
            "Pork",
            "pork",
            "pork shoulder",
            quick="pork tenderloin",
            mince="pork mince",
            whole="pork loin joint",
            qty={"roast": "1.5 kg"},
        ),
        _i("sausage", "meat", "Sausage", "sausages", "pork sausages", qty={"main": "8"}),
        _i(
            "chorizo",
            "meat",
            "Chorizo",
            "chorizo",
            "cooking chorizo",
            qty={"main": "250 g", "filling": "100 g"},
        ),
        _i(
            "bacon",
            "meat",
            "Bacon",
            "bacon",
            "smoked bacon lardons",
            qty={"main": "200 g", "filling": "120 g"},
        ),
        # fish and seafood
        _i("salmon", "fish", "Salmon", "salmon", "skinless salmon fillets"),
        _i("cod", "fish", "Cod", "cod", "skinless cod fillets"),
        _i("haddock", "fish", "Haddock", "haddock", "skinless haddock fillets"),
        _i("trout", "fish", "Trout", "trout", "trout fillets"),
        _i("mackerel", "fish", "Mackerel", "mackerel", "mackerel fillets"),
        _i("hake", "fish", "Hake", "hake", "skinless hake fillets"),
        _i("sea_bass", "fish", "Sea Bass", "sea bass", "sea bass fillets"),
        _i("tuna", "fish", "Tuna", "tuna", "tuna steaks"),
        _i("prawn", "seafood", "Prawn", "prawns", "raw peeled king prawns"),
        _i("mussel", "seafood", "Mussel", "mussels", "mussels, cleaned", qty={"main": "1 kg"}),
        _i("squid", "seafood", "Squid", "squid", "squid, cleaned and cut into rings"),
        _i("scallop", "seafood", "Scallop", "scallops", "scallops", qty={"main": "12"}),
        _i("crab", "seafood", "Crab", "crab", "white crab meat", qty={"main": "250 g"}),
        # legumes
        _i("chickpea", "legume", "Chickpea", "chickpeas", "chickpeas, drained"),
        _i("black_bean", "legume", "Black Bean", "black beans", "black beans, drained"),
        _i("kidney_bean", "legume", "Kidney Bean", "kidney beans", "kidney beans, drained"),
        _i("butter_bean", "legume", "Butter Bean", "butter beans", "butter beans, drained"),
        _i("white_bean", "legume", "White Bean", "white beans", "cannellini beans, drained"),
        _i(
            "red_lentil",
            "legume",
            "Red Lentil",
            "red lentils",
            "red lentils, rinsed",
            qty={"main": "250 g", "filling": "100 g"},
        ),
        _i(
            "green_lentil",
            "legume",
            "Lentil",
            "lentils",
            "green lentils, rinsed",
            qty={"main": "250 g", "filling": "100 g"},
        ),
        _i(
            "split_pea",
            "legume",
            "Split Pea",
            "split peas",
            "yellow split peas, rinsed",
            qty={"main": "250 g"},
        ),
        _i(
            "edamame",
            "legume",
            "Edamame",
            "edamame beans",
            "frozen edamame beans",
            qty={"main": "300 g"},
        ),
        # tofu and cheeses that carry a dish
        _i("tofu", "tofu", "Tofu", "tofu", "firm tofu, pressed"),
        _i("tempeh", "tofu", "Tempeh", "tempeh", "tempeh", qty={"main": "300 g"}),
        _i("paneer", "tofu", "Paneer", "paneer", "paneer", qty={"main": "300 g"}),
        _i("halloumi", "tofu", "Halloumi", "halloumi", "halloumi", qty={"main": "250 g"}),
        _i("feta", "cheese", "Feta", "feta", "feta, crumbled"),
        _i("goats_cheese", "cheese", "Goat's Cheese", "goat's cheese", "soft goat's cheese"),
        _i("cheddar", "cheese", "Cheddar", "cheddar", "mature cheddar, grated"),
        _i("mozzarella", "cheese", "Mozzarella", "mozzarella", "mozzarella, torn"),
        # vegetables
        _i("mushroom", "veg", "Mushroom", "mushrooms", "chestnut mushrooms"),
        _i(
            "cauliflower",
            "veg",
            "Cauliflower",
            "cauliflower",
            "cauliflower",
            qty={"roast": "1 large head"},
        ),
        _i("broccoli", "veg", "Broccoli", "broccoli", "broccoli"),
        _i("squash", "veg", "Butternut Squash", "butternut squash", "butternut squash, peeled"),
        _i("pumpkin", "veg", "Pumpkin", "pumpkin", "pumpkin, peeled"),
        _i("sweet_potato", "veg", "Sweet Potato", "sweet potatoes", "sweet potatoes, peeled"),
        _i("potato", "veg", "Potato", "potatoes", "floury potatoes, peeled"),
        _i("aubergine", "veg", "Aubergine", "aubergines", "aubergines", qty={"main": "2 large"}),
        _i("courgette", "veg", "Courgette", "courgettes", "courgettes"),
        _i(
            "pepper",
            "veg",
            "Red Pepper",
            "red peppers",
            "red peppers, deseeded",
            qty={"main": "4", "filling": "1"},
        ),
        _i("spinach", "veg", "Spinach", "spinach", "baby spinach", qty={"main": "250 g"}),
        _i("kale", "veg", "Kale", "kale", "kale, tough stalks removed", qty={"main": "200 g"}),
        _i("leek", "veg", "Leek", "leeks", "leeks, trimmed", qty={"main": "3 large"}),
        _i("carrot", "veg", "Carrot", "carrots", "carrots, peeled"),
        _i("pea", "veg", "Pea", "peas", "frozen peas", qty={"main": "400 g"}),
        _i(
            "sweetcorn", "veg", "Sweetcorn", "sweetcorn", "sweetcorn kernels", qty={"main": "400 g"}
        ),
        _i("tomato", "veg", "Tomato", "tomatoes", "ripe tomatoes"),
        _i("beetroot", "veg", "Beetroot", "beetroot", "raw beetroot, peeled"),
        _i("parsnip", "veg", "Parsnip", "parsnips", "parsnips, peeled"),
        _i("fennel", "veg", "Fennel", "fennel", "fennel bulbs, trimmed", qty={"main": "2"}),
        _i(
            "asparagus",
            "veg",
            "Asparagus",
            "asparagus",
            "asparagus, woody ends snapped off",
            qty={"main": "2 bunches"},
        ),
        _i(
            "green_bean",
            "veg",
            "Green Bean",
            "green beans",
            "green beans, trimmed",
            qty={"main": "400 g"},
        ),
        _i("cabbage", "veg", "Cabbage", "cabbage", "savoy cabbage", qty={"main": "1/2 head"}),
        _i("celeriac", "veg", "Celeriac", "celeriac", "celeriac, peeled"),
        _i("pak_choi", "veg", "Pak Choi", "pak choi", "pak choi, halved", qty={"main": "4 heads"}),
        _i("red_onion", "veg", "Red Onion", "red onions", "red onions", qty={"main": "4"}),
        _i(
            "artichoke",
            "veg",
            "Artichoke",
            "artichokes",
            "artichoke hearts from a jar",
            qty={"main": "280 g jar"},
        ),
        # fruit
        _i("apple", "fruit", "Apple", "apples", "apples, peeled, cored and chopped"),
        _i("pear", "fruit", "Pear", "pears", "ripe pears, cored and chopped"),
        _i(
            "banana",
            "fruit",
            "Banana",
            "bananas",
            "ripe bananas, mashed",
            qty={"fruit_small": "3", "fruit_blend": "2"},
        ),
        _i("blueberry", "fruit", "Blueberry", "blueberries", "blueberries"),
        _i("raspberry", "fruit", "Raspberry", "raspberries", "raspberries"),
        _i("strawberry", "fruit", "Strawberry", "strawberries", "strawberries, hulled and halved"),
        _i("blackberry", "fruit", "Blackberry", "blackberries", "blackberries"),
        _i("cherry", "fruit", "Cherry", "cherries", "cherries, pitted"),
        _i("plum", "fruit", "Plum", "plums", "ripe plums, stoned and quartered"),
        _i("peach", "fruit", "Peach", "peaches", "ripe peaches, stoned and sliced"),
        _i("apricot", "fruit", "Apricot", "apricots", "apricots, stoned and halved"),
        _i("rhubarb", "fruit", "Rhubarb", "rhubarb", "rhubarb, cut into short lengths"),
        _i("mango", "fruit", "Mango", "mango", "ripe mango, peeled and diced"),
        _i("pineapple", "fruit", "Pineapple", "pineapple", "pineapple, peeled and chopped"),
        _i(
            "lemon",
            "fruit",
            "Lemon",
            "lemons",
            "lemons, zested and juiced",
            qty={"fruit_small": "2", "fruit_big": "4"},
        ),
        _i(
            "orange",
            "fruit",
            "Orange",
            "oranges",
            "oranges, zested and juiced",
            qty={"fruit_small": "2", "fruit_big": "4"},
        ),
        _i("fig", "fruit", "Fig", "figs", "ripe figs, quartered"),
        _i("gooseberry", "fruit", "Gooseberry", "gooseberries", "gooseberries, topped and tailed"),
        _i(
            "cranberry",
            "fruit",
            "Cranberry",
            "cranberries",
            "dried cranberries",
            qty={"fruit_small": "100 g"},
        ),
        # sweet flavours that carry a bake
        _i(
            "chocolate",
            "sweet",
            "Chocolate",
            "chocolate",
            "dark chocolate, chopped",
            qty={"fruit_small": "150 g", "fruit_blend": "=2 tbsp cocoa powder"},
        ),
        _i(
            "coconut",
            "sweet",
            "Coconut",
            "coconut",
            "desiccated coconut",
            qty={"fruit_small": "80 g", "fruit_blend": "=200 ml coconut milk"},
        ),
        _i("oat", "sweet", "Oat", "oats", "rolled oats", qty={"fruit_small": "100 g"}),
        _i("date", "sweet", "Date", "dates", "pitted dates, chopped", qty={"fruit_small": "150 g"}),
        _i(
            "walnut", "sweet", "Walnut", "walnuts", "walnuts, chopped", qty={"fruit_small": "100 g"}
        ),
        _i("pecan", "sweet", "Pecan", "pecans", "pecans, chopped", qty={"fruit_small": "100 g"}),
        _i(
            "peanut_butter",
            "sweet",
            "Peanut Butter",
            "peanut butter",
            "smooth peanut butter",
            qty={"fruit_small": "125 g", "fruit_blend": "2 tbsp"},
        ),
        _i(
            "hazelnut",
            "sweet",
            "Hazelnut",
            "hazelnuts",
            "toasted hazelnuts, chopped",
            qty={"fruit_small": "100 g"},
        ),
        # pantry items used by techniques
        _i("egg", "egg", "Egg", "eggs", "eggs", qty={"main": "4"}),
        _i("onion", "allium", "Onion", "onions", "onions, thinly sliced", qty={"main": "4"}),
        _i("garlic", "allium", "Garlic", "garlic", "garlic bulbs", qty={"main": "2"}),
        _i("almond", "nut", "Almond", "almonds", "whole almonds", qty={"main": "100 g"}),
        _i("pine_nut", "nut", "Pine Nut", "pine nuts", "pine nuts", qty={"main": "50 g"}),
        _i("cashew", "nut", "Cashew", "cashews", "cashews", qty={"main": "100 g"}),
        _i("sesame", "nut", "Sesame", "sesame seeds", "sesame seeds", qty={"main": "3 tbsp"}),
        _i(
            "pumpkin_seed",
            "nut",
            "Pumpkin Seed",
            "pumpkin seeds",
            "pumpkin seeds",
            qty={"main": "50 g"},
        ),
        _i(
            "cumin_seed", "spice", "Cumin Seed", "cumin seeds", "cumin seeds", qty={"main": "2 tsp"}
        ),
        _i(
            "coriander_seed",
            "spice",
            "Coriander Seed",
            "coriander seeds",
            "coriander seeds",
            qty={"main": "2 tsp"},
        ),
        _i(
            "basmati",
            "grain",
            "Basmati Rice",
            "basmati rice",
            "basmati rice",
            qty={"main": "300 g"},
        ),
        _i("brown_rice", "grain", "Brown Rice", "brown rice", "brown rice", qty={"main": "300 g"}),
        _i("quinoa", "grain", "Quinoa", "quinoa", "quinoa, rinsed", qty={"main": "200 g"}),
        _i("couscous", "grain", "Couscous", "couscous", "couscous", qty={"main": "250 g"}),
        _i(
            "bulgur", "grain", "Bulgur Wheat", "bulgur wheat", "bulgur wheat", qty={"main": "200 g"}
        ),
        _i(
            "barley", "grain", "Pearl Barley", "pearl barley", "pearl barley", qty={"main": "200 g"}
        ),
        _i("polenta", "grain", "Polenta", "polenta", "quick-cook polenta", qty={"main": "200 g"}),
        _i("cucumber", "veg", "Cucumber", "cucumbers", "cucumbers", qty={"main": "2"}),
        _i("radish", "veg", "Radish", "radishes", "radishes, trimmed", qty={"main": "200 g"}),
    ]
}


@dataclass(frozen=True)
class Flavour:
    """A modifier ("Smoky") or a cuisine ("Moroccan") that prefixes a dish name.

    It adds `extra` ingredient lines, one method step (`step`) and a garnish phrase, so the
    same dish type reads differently in each flavour and the name is reflected in the recipe.
    """

    key: str
    label: str
    extra: tuple[tuple[str, str], ...]
    step: str
    garnish: str
    cuisine: str | None = None
    sweet: bool = False


def _f(
    key: str,
    label: str,
    extra: list[tuple[str, str]],
    step: str,
    garnish: str,
    cuisine: str | None = None,
    sweet: bool = False,
) -> Flavour:
    return Flavour(key, label, tuple(extra), step, garnish, cuisine, sweet)


FLAVOURS: dict[str, Flavour] = {
    f.key: f
    for f in [
        # savoury modifiers
        _f(
            "smoky",
            "Smoky",
            [("2 tsp", "smoked paprika")],
            "Stir in the smoked paprika and cook for 30 seconds until it smells toasty.",
            "with a pinch more smoked paprika on top",
        ),
        _f(
            "spicy",
            "Spicy",
            [("1", "red chilli, finely chopped"), ("1/2 tsp", "chilli flakes")],
            "Add the chilli and chilli flakes and cook for 1 minute.",
            "with extra chilli flakes",
        ),
        _f(
            "lemony",
            "Lemony",
            [("1", "lemon, zest and juice")],
            "Stir in the lemon zest and most of the juice; taste and add the rest if needed.",
            "with a squeeze of lemon",
        ),
        _f(
            "garlic",
            "Garlic",
            [("4", "extra garlic cloves, thinly sliced")],
            "Fry the sliced garlic gently for 2 minutes until golden, not brown.",
            "with the golden garlic spooned over",
        ),
        _f(
            "herby",
            "Herby",
            [("1 small bunch", "parsley, chopped"), ("2 sprigs", "thyme")],
            "Add the thyme leaves now and keep the parsley for the end.",
            "scattered with the chopped parsley",
        ),
        _f(
            "creamy",
            "Creamy",
            [("150 ml", "double cream")],
            "Pour in the cream and let it bubble for 2 minutes until slightly thickened.",
            "with a swirl of cream",
        ),
        _f(
            "ginger",
            "Ginger",
            [("1 thumb-sized piece", "ginger, grated")],
            "Add the grated ginger and cook for 1 minute.",
            "with a little shredded ginger",
        ),
        _f(
            "sesame",
            "Sesame",
            [("1 tbsp", "toasted sesame oil"), ("1 tbsp", "sesame seeds")],
            "Drizzle in the sesame oil and toss well.",
            "sprinkled with sesame seeds",
        ),
        _f(
            "miso",
            "Miso",
            [("2 tbsp", "white miso paste")],
            "Loosen the miso with a splash of hot water and stir it through.",
            "with sliced spring onions",
        ),
        _f(
            "cheesy",
            "Cheesy",
            [("100 g", "mature cheddar, grated")],
            "Scatter over the grated cheese and let it melt.",
            "with extra cheese on top",
        ),
        _f(
            "harissa",
            "Harissa",
            [("2 tbsp", "harissa paste")],
            "Stir in the harissa paste and cook for 1 minute.",
            "with a spoonful of yoghurt",
        ),
        _f(
            "sticky",
            "Sticky",
            [("2 tbsp", "honey"), ("2 tbsp", "soy sauce")],
            "Mix the honey and soy sauce and brush or toss it over so everything is glazed.",
            "with the sticky juices spooned over",
        ),
        _f(
            "pesto",
            "Pesto",
            [("4 tbsp", "basil pesto")],
            "Stir the pesto through off the heat so it stays bright green.",
            "with a few basil leaves",
        ),
        _f(
            "coconut",
            "Coconut",
            [("1 tin (400 ml)", "coconut milk")],
            "Pour in the coconut milk and bring back to a gentle simmer.",
            "with a drizzle of coconut milk",
        ),
        # cuisines
        _f(
            "thai",
            "Thai",
            [("2 tbsp", "Thai curry paste"), ("1 tbsp", "fish sauce"), ("1", "lime")],
            "Fry the curry paste for 1 minute, then season with the fish sauce and lime juice.",
            "with coriander and lime wedges",
            cuisine="Thai",
        ),
        _f(
            "indian",
            "Indian",
            [("1 tsp", "cumin seeds"), ("1 tsp", "garam masala"), ("1/2 tsp", "ground turmeric")],
            "Add the cumin seeds, turmeric and garam masala and fry for 1 minute.",
            "with fresh coriander",
            cuisine="Indian",
        ),
        _f(
            "moroccan",
            "Moroccan",
            [
                ("1 tsp", "ground cumin"),
                ("1/2 tsp", "ground cinnamon"),
                ("50 g", "dried apricots, chopped"),
            ],
            "Stir in the cumin, cinnamon and apricots and cook for 1 minute.",
            "with chopped mint and toasted almonds",
            cuisine="Moroccan",
        ),
        _f(
            "mexican",
            "Mexican",
            [("1 tsp", "ground cumin"), ("1 tsp", "chipotle chilli paste"), ("1", "lime")],
            "Add the cumin and chipotle paste, cook for 1 minute, then squeeze in the lime.",
            "with coriander, sliced avocado and lime",
            cuisine="Mexican",
        ),
        _f(
            "italian",
            "Italian",
            [("1 tsp", "dried oregano"), ("30 g", "parmesan, grated")],
            "Add the oregano and a splash of water, then stir in half the parmesan.",
            "with the rest of the parmesan and torn basil",
            cuisine="Italian",
        ),
        _f(
            "greek",
            "Greek",
            [("1 tsp", "dried oregano"), ("1", "lemon"), ("100 g", "feta")],
            "Add the oregano and the juice of the lemon.",
            "with crumbled feta",
            cuisine="Greek",
        ),
        _f(
            "japanese",
            "Japanese",
            [
                ("2 tbsp", "soy sauce"),
                ("1 tbsp", "mirin"),
                ("1 thumb-sized piece", "ginger, grated"),
            ],
            "Add the ginger, soy sauce and mirin and let it bubble for 1 minute.",
            "with spring onions and sesame seeds",
            cuisine="Japanese",
        ),
        _f(
            "korean",
            "Korean",
            [("2 tbsp", "gochujang"), ("1 tbsp", "toasted sesame oil")],
            "Stir in the gochujang and sesame oil so everything is coated.",
            "with kimchi and sliced spring onions",
            cuisine="Korean",
        ),
        _f(
            "chinese",
            "Chinese",
            [
                ("2 tbsp", "light soy sauce"),
                ("1 tbsp", "rice wine"),
                ("1/2 tsp", "Chinese five-spice"),
            ],
            "Add the five-spice, soy sauce and rice wine and toss for 1 minute.",
            "with sliced spring onions",
            cuisine="Chinese",
        ),
        _f(
            "spanish",
            "Spanish",
            [("1 tsp", "smoked paprika"), ("1 tbsp", "sherry vinegar")],
            "Add the smoked paprika, then splash in the sherry vinegar.",
            "with chopped parsley",
            cuisine="Spanish",
        ),
        _f(
            "french",
            "French",
            [("2 sprigs", "thyme"), ("1", "bay leaf"), ("1 tsp", "Dijon mustard")],
            "Add the thyme, bay leaf and mustard.",
            "with chopped parsley",
            cuisine="French",
        ),
        _f(
            "lebanese",
            "Lebanese",
            [("1 tsp", "sumac"), ("1/2 tsp", "ground allspice")],
            "Stir in the allspice now and save the sumac for the end.",
            "with sumac and pomegranate seeds",
            cuisine="Lebanese",
        ),
        _f(
            "caribbean",
            "Caribbean",
            [
                ("1 tsp", "ground allspice"),
                ("3 sprigs", "thyme"),
                ("1/2", "scotch bonnet chilli, finely chopped"),
            ],
            "Add the allspice, thyme and scotch bonnet and cook for 1 minute.",
            "with sliced spring onions and lime",
            cuisine="Caribbean",
        ),
        _f(
            "vietnamese",
            "Vietnamese",
            [("1 tbsp", "fish sauce"), ("1", "lemongrass stalk, finely chopped"), ("1", "lime")],
            "Add the lemongrass, then season with fish sauce and lime juice.",
            "with mint, coriander and lime",
            cuisine="Vietnamese",
        ),
        _f(
            "ethiopian",
            "Ethiopian",
            [("2 tsp", "berbere spice mix")],
            "Stir in the berbere and cook for 1 minute until it darkens slightly.",
            "with a spoonful of yoghurt",
            cuisine="Ethiopian",
        ),
        _f(
            "persian",
            "Persian",
            [
                ("1/2 tsp", "ground turmeric"),
                ("1 pinch", "saffron"),
                ("1 tbsp", "pomegranate molasses"),
            ],
            "Add the turmeric, the saffron soaked in 2 tbsp hot water and the molasses.",
            "with pomegranate seeds and herbs",
            cuisine="Persian",
        ),
        _f(
            "turkish",
            "Turkish",
            [("1 tsp", "Turkish chilli flakes"), ("1 tbsp", "tomato paste")],
            "Stir in the tomato paste and chilli flakes and cook for 1 minute.",
            "with garlic yoghurt and dill",
            cuisine="Turkish",
        ),
        _f(
            "cajun",
            "Cajun",
            [("2 tsp", "Cajun spice mix")],
            "Add the Cajun spice and cook for 1 minute.",
            "with sliced spring onions",
            cuisine="Cajun",
        ),
        _f(
            "british",
            "British",
            [("1 tbsp", "Worcestershire sauce"), ("2 sprigs", "thyme")],
            "Add the thyme and Worcestershire sauce.",
            "with chopped parsley",
            cuisine="British",
        ),
        _f(
            "sri_lankan",
            "Sri Lankan",
            [("10", "curry leaves"), ("1", "cinnamon stick"), ("1/2 tsp", "ground turmeric")],
            "Fry the curry leaves and cinnamon for 30 seconds, then add the turmeric.",
            "with the crisp curry leaves",
            cuisine="Sri Lankan",
        ),
        _f(
            "indonesian",
            "Indonesian",
            [("2 tbsp", "kecap manis"), ("1 tbsp", "sambal oelek")],
            "Add the sambal and kecap manis and toss until glossy.",
            "with crispy shallots and cucumber",
            cuisine="Indonesian",
        ),
        # sweet flavours
        _f(
            "cinnamon",
            "Cinnamon",
            [("1 tsp", "ground cinnamon")],
            "Mix the cinnamon in with the dry ingredients.",
            "with a dusting of cinnamon",
            sweet=True,
        ),
        _f(
            "vanilla",
            "Vanilla",
            [("1 tsp", "vanilla extract")],
            "Add the vanilla with the wet ingredients.",
            "with a spoonful of yoghurt",
            sweet=True,
        ),
        _f(
            "lemon",
            "Lemon",
            [("1", "lemon, zested")],
            "Rub the lemon zest into the sugar before mixing.",
            "with a little extra zest",
            sweet=True,
        ),
        _f(
            "orange",
            "Orange",
            [("1", "orange, zested")],
            "Add the orange zest with the sugar.",
            "with a little orange zest",
            sweet=True,
        ),
        _f(
            "ginger_sweet",
            "Ginger",
            [("1 tsp", "ground ginger")],
            "Sift the ground ginger in with the flour.",
            "with chopped stem ginger",
            sweet=True,
        ),
        _f(
            "maple",
            "Maple",
            [("3 tbsp", "maple syrup")],
            "Stir the maple syrup in with the wet ingredients.",
            "with a drizzle of maple syrup",
            sweet=True,
        ),
        _f(
            "honey_sweet",
            "Honey",
            [("2 tbsp", "runny honey")],
            "Warm the honey slightly so it mixes in easily.",
            "with a drizzle of honey",
            sweet=True,
        ),
        _f(
            "cardamom",
            "Cardamom",
            [("1/2 tsp", "ground cardamom")],
            "Add the cardamom with the dry ingredients.",
            "with chopped pistachios",
            sweet=True,
        ),
        _f(
            "almond_sweet",
            "Almond",
            [("1/2 tsp", "almond extract"), ("25 g", "flaked almonds")],
            "Add the almond extract with the wet ingredients; keep the flaked almonds for the top.",
            "with toasted flaked almonds",
            sweet=True,
        ),
        _f(
            "spiced",
            "Spiced",
            [("1 tsp", "mixed spice")],
            "Mix the mixed spice in with the dry ingredients.",
            "with a dusting of icing sugar",
            sweet=True,
        ),
        _f(
            "brown_sugar",
            "Brown Sugar",
            [("2 tbsp", "light brown sugar")],
            "Use the brown sugar in place of some of the white sugar for a toffee note.",
            "with a little brown sugar sprinkled over",
            sweet=True,
        ),
    ]
}

SAVOURY_MODS = (
    "smoky",
    "spicy",
    "lemony",
    "garlic",
    "herby",
    "creamy",
    "ginger",
    "sesame",
    "miso",
    "cheesy",
    "harissa",
    "sticky",
    "pesto",
    "coconut",
)
CUISINES = tuple(k for k, f in FLAVOURS.items() if f.cuisine)
SWEET_FLAVOURS = tuple(k for k, f in FLAVOURS.items() if f.sweet)

SYSTEM_PROMPTS = (
    "You are a helpful cooking assistant.",
    "You are a friendly chef. Give clear recipes with quantities and numbered steps.",
    "You are a kitchen assistant. Answer with practical recipes.",
    "You help home cooks. Keep answers short and practical.",
    "You are Sous, a cooking helper for busy people.",
    "Answer cooking questions with a recipe: ingredients first, then numbered steps.",
    "You are a patient cooking teacher for beginners.",
    "You are a recipe assistant. Use metric quantities.",
)
