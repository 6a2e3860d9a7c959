#!/usr/bin/env python3
"""Build ``demo.json``: a small Qwen2-style byte-level BPE tokenizer for mixtape's demos and tests.

The tokenizer is a real HuggingFace ``tokenizer.json`` (loadable by the Rust ``tokenizers`` crate 0.22 with
``Tokenizer::from_file`` and by the Python package with ``Tokenizer.from_file``):

* normalizer NFC; pre-tokenizer = Qwen2 split regex (``Split``, Isolated) followed by ``ByteLevel``
  (add_prefix_space=false, use_regex=false); ByteLevel decoder; ByteLevel post-processor that only fixes
  offsets (it adds no BOS/EOS).
* 4089 BPE entries (256 byte symbols + merges) at ids 0..4088, then 7 special added tokens at ids 4089..4095:
  ``<|endoftext|> <|im_start|> <|im_end|> <|vision_start|> <|vision_end|> <|image_pad|> <|video_pad|>``.
  Total vocabulary: 4096.
* Trained on an English corpus that this script generates itself (no downloads): sentences about coloured
  shapes, counting, positions, questions and answers, OCR-like transcriptions, bounding boxes, a little
  ChatML scaffolding, and a few hundred hand-written general prose sentences.

The output is deterministic (fixed seed, single-threaded training).  To rebuild it::

    python3 -m venv /tmp/tokvenv
    /tmp/tokvenv/bin/pip install 'tokenizers>=0.22,<0.23'
    /tmp/tokvenv/bin/python recipes/tokenizers/make_demo_tokenizer.py      # writes recipes/tokenizers/demo.json

The script ends with self-checks (special tokens are single ids, decode round-trips ASCII text) and prints the
average number of tokens per word on held-out prose that is not part of the training corpus.
"""

import hashlib
import json
import os
import random
import sys

os.environ["TOKENIZERS_PARALLELISM"] = "false"  # single thread: deterministic and quiet
os.environ["RAYON_NUM_THREADS"] = "1"

from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "demo.json")
SEED = 20240611
VOCAB_SIZE = 4096
SPECIAL_TOKENS = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|image_pad|>",
    "<|video_pad|>",
]
# The pre-tokenization regex of Qwen2 (tokenizer.json of Qwen/Qwen2-7B-Instruct).
QWEN2_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)

# --------------------------------------------------------------------------------------------------------------
# Vocabulary for the synthetic "shapes" corpus
# --------------------------------------------------------------------------------------------------------------
SHAPES = ["circle", "square", "triangle", "star", "rectangle", "hexagon", "diamond", "oval", "pentagon", "heart",
          "cross", "arrow", "ring", "line", "dot"]
COLOURS = ["red", "green", "blue", "yellow", "orange", "purple", "black", "white", "gray", "pink", "brown", "cyan"]
COUNT_WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven",
               "twelve"]
POSITIONS = ["left", "right", "top", "bottom", "center", "top left", "top right", "bottom left", "bottom right",
             "upper left", "lower right", "middle"]
SIZES = ["small", "large", "tiny", "big", "medium-sized", "huge", "thin", "wide", "tall"]
BACKGROUNDS = ["white", "black", "gray", "light gray", "pale yellow", "dark blue", "cream"]


def plural(shape):
    return shape + ("es" if shape.endswith(("x", "s")) else "s")


def shape_sentences(rng, n):
    out = []
    for _ in range(n):
        c, s, p = rng.choice(COLOURS), rng.choice(SHAPES), rng.choice(POSITIONS)
        k = rng.randint(1, 12)
        kw = COUNT_WORDS[k]
        s_k = s if k == 1 else plural(s)
        c2, s2, p2 = rng.choice(COLOURS), rng.choice(SHAPES), rng.choice(POSITIONS)
        bg = rng.choice(BACKGROUNDS)
        size = rng.choice(SIZES)
        x0, y0 = rng.randint(0, 300), rng.randint(0, 300)
        x1, y1 = x0 + rng.randint(8, 320), y0 + rng.randint(8, 240)
        t = rng.randrange(16)
        if t == 0:
            out.append(f"A {c} {s} is at the {p} of the image.")
        elif t == 1:
            out.append(f"There {'is' if k == 1 else 'are'} {kw} {c} {s_k} on a {bg} background.")
        elif t == 2:
            out.append(f"How many {plural(s)} are there? There {'is' if k == 1 else 'are'} {k} {s_k}.")
        elif t == 3:
            out.append(f"What colour is the {s}? The {s} is {c}.")
        elif t == 4:
            out.append(f"The image shows a {size} {c} {s} in the {p} and a {c2} {s2} in the {p2}.")
        elif t == 5:
            out.append(f"Question: Where is the {c} {s}?\nAnswer: It is in the {p} corner.")
        elif t == 6:
            out.append(f"The {c} {s} is located at ({x0}, {y0}), ({x1}, {y1}).")
        elif t == 7:
            out.append(f"<ref>the {c} {s}</ref><box>({x0},{y0}),({x1},{y1})</box>")
        elif t == 8:
            out.append(f"Count the {c} shapes. Answer: {kw}.")
        elif t == 9:
            out.append(f"Is the {s} to the left of the {s2}? {'Yes' if rng.random() < 0.5 else 'No'}, "
                       f"the {s} is on the {rng.choice(['left', 'right'])} side.")
        elif t == 10:
            out.append(f"A picture with {kw} {s_k}: they are {c}, and the background is {bg}.")
        elif t == 11:
            out.append(f"Describe the image. The picture contains {k} {s_k} and one {c2} {s2} near the {p2}.")
        elif t == 12:
            out.append(f"The bounding box of the {s} is [{x0}, {y0}, {x1}, {y1}] in pixel coordinates.")
        elif t == 13:
            out.append(f"Which shape is {c}? The {c} one is a {s}.")
        elif t == 14:
            out.append(f"In the {p} there is a {c} {s}; in the {p2} there is a {c2} {s2}.")
        else:
            out.append(f"The {s} has a {c} outline and is filled with {c2}. It measures {x1 - x0} by {y1 - y0} pixels.")
    return out


# --------------------------------------------------------------------------------------------------------------
# OCR-like transcriptions
# --------------------------------------------------------------------------------------------------------------
OCR_LINES = [
    "OPEN 9AM - 5PM", "NO PARKING", "EXIT", "FRESH BREAD DAILY", "SALE 50% OFF", "Total: $12.40", "Thank you!",
    "Room 204", "Platform 3", "Invoice No. 10482", "Date: 2023-07-14", "Qty 2 x 3.50", "Subtotal 7.00",
    "Tax 0.56", "Please keep off the grass", "Chapter 1: The Beginning", "Page 17 of 42", "Main Street",
    "Welcome to the Museum", "Caution: Wet Floor", "STOP", "Speed Limit 30", "Coffee 2.80 Tea 2.20",
    "Figure 3. Results of the experiment", "Table 2: Summary statistics", "Name: ____________", "Signature",
    "Serial No. A7-2291", "Best before 12/10/2025", "Made in Portugal", "Handle with care", "Fragile",
    "Gate B12", "Departures", "Arrivals", "Ticket: Adult, single", "Lunch Menu", "Soup of the day",
]


def ocr_sentences(rng, n):
    out = []
    for _ in range(n):
        line = rng.choice(OCR_LINES)
        t = rng.randrange(5)
        if t == 0:
            out.append(f'The text in the image reads: "{line}".')
        elif t == 1:
            out.append(f"OCR: {line}")
        elif t == 2:
            out.append(f'What does the sign say? It says "{line}".')
        elif t == 3:
            out.append(f"Transcription:\n{line}\n{rng.choice(OCR_LINES)}")
        else:
            c = rng.choice(COLOURS)
            out.append(f'A {c} sign with the words "{line}" written in {rng.choice(COLOURS)} letters.')
    return out


def chat_snippets(rng, n):
    out = []
    for _ in range(n):
        c, s = rng.choice(COLOURS), rng.choice(SHAPES)
        out.append(f"system\nYou are a helpful assistant.\nuser\nWhat is in this picture?\nassistant\n"
                   f"A {c} {s}.\n")
        out.append(f"user\nPlease describe the {s} in detail.\nassistant\nThe {s} is {c} and sits near the "
                   f"{rng.choice(POSITIONS)}.\n")
    return out


# --------------------------------------------------------------------------------------------------------------
# General English prose (hand-written for this script)
# --------------------------------------------------------------------------------------------------------------
PROSE = """
The speed of light in a vacuum is close to three hundred thousand kilometres per second.
Water boils at a lower temperature on a mountain because the air pressure there is lower.
Plants capture energy from sunlight and store it in sugars through photosynthesis.
The human heart beats roughly one hundred thousand times every day.
Most of the oxygen we breathe was produced by tiny organisms living in the ocean.
A chemical reaction can release heat, absorb heat, or do neither in a noticeable way.
Electrons move through a copper wire much more slowly than the signal they carry.
The moon has no atmosphere, so footprints left there may last for millions of years.
Scientists test a hypothesis by designing an experiment that could prove it wrong.
Gravity bends the path of light that passes close to a massive star.
Bacteria can double their number in less than half an hour under good conditions.
The periodic table arranges the elements by the number of protons in their nuclei.
A rainbow appears when sunlight is refracted and reflected inside falling raindrops.
Sound travels faster through water than through air, and faster still through steel.
Volcanoes form where molten rock rises through cracks in the crust of the earth.
The theory of evolution explains how populations change over many generations.
Researchers measured the temperature of the lake every morning for an entire year.
Glaciers carve deep valleys as they slowly slide down from the mountains.
An atom is mostly empty space, with a tiny dense nucleus at its centre.
Vaccines train the immune system to recognise a disease before it causes harm.
The experiment was repeated twelve times, and the results were remarkably consistent.
Mathematics gives scientists a precise language for describing patterns in nature.
Telescopes on high mountains avoid much of the haze and light of the cities below.
The engine converts the chemical energy of fuel into motion and waste heat.
Some birds navigate across entire continents by sensing the magnetic field of the earth.
The ancient city was built on a hill overlooking a wide and fertile river valley.
Historians still debate the causes of the war, which lasted for nearly a decade.
The printing press made books cheaper and helped ideas spread across Europe.
In the nineteenth century, railways transformed the way people travelled and traded.
The treaty was signed in a small village after months of difficult negotiation.
Many medieval castles were built of local stone and surrounded by deep ditches.
The empire collected taxes in grain, cloth, and silver from its distant provinces.
Explorers sailed along the coast for weeks before they found a safe harbour.
The library contained thousands of handwritten scrolls on law, medicine, and poetry.
After the revolution, the new government rewrote the constitution and held elections.
Farmers in the region have grown rice on terraced hillsides for more than a thousand years.
The old bridge survived floods, earthquakes, and two centuries of heavy traffic.
Letters written by soldiers describe the cold, the mud, and the long hours of waiting.
The museum displays tools, coins, and pottery found during the excavation.
Trade routes across the desert connected markets that were thousands of miles apart.
The king died without an heir, and his cousins fought over the throne for years.
Archaeologists found the remains of a kitchen with a stone oven and clay pots.
The first public schools in the town were opened by a group of local merchants.
During the famine, families left their villages and moved to the growing cities.
The invention of the telegraph allowed news to cross oceans in a matter of minutes.
To make a simple tomato sauce, cook garlic gently in olive oil before adding the tomatoes.
Bread dough should rest in a warm place until it has doubled in size.
Season the soup with salt and pepper, then let it simmer for twenty minutes.
Fresh herbs such as basil and parsley are best added at the very end of cooking.
Whisk the eggs with a little milk and pour them into a hot buttered pan.
Roast the vegetables in a hot oven until their edges are brown and crisp.
A sharp knife is safer than a dull one because it needs less force.
Rinse the rice several times in cold water to remove the extra starch.
Chocolate melts smoothly when it is heated slowly over a pot of simmering water.
The recipe calls for two cups of flour, one cup of sugar, and three eggs.
Let the cake cool completely before you spread the frosting on top.
Lemon juice keeps sliced apples from turning brown for a few hours.
My grandmother always added a pinch of cinnamon to her apple pie.
Stir the porridge often so that it does not stick to the bottom of the pot.
Marinate the chicken overnight in yogurt, garlic, and a mixture of spices.
Beans should be soaked in water for several hours before they are cooked.
The chef tasted the sauce, frowned, and reached for the salt.
A good salad needs crisp leaves, a little acid, and a generous amount of oil.
We took the night train from the capital and woke up beside the sea.
The hotel was small and quiet, with a garden full of orange trees.
Remember to carry a copy of your passport when you travel abroad.
The hiking trail climbs steeply for two hours before it reaches the lake.
Our flight was delayed by fog, so we spent the morning at the airport.
The market in the old town sells spices, fabric, fruit, and handmade jewellery.
Renting a bicycle is the easiest way to explore the narrow streets of the city.
The ferry leaves the harbour every morning at seven and returns in the evening.
Pack light clothes for the day and a warm jacket for the cold desert nights.
We stopped at a roadside cafe and ordered coffee and fresh pastries.
The guide explained the history of every building we passed on the walking tour.
From the top of the tower you can see the river, the bridges, and the hills beyond.
The bus to the village runs only twice a day, so check the timetable carefully.
Travellers should drink bottled water and avoid ice in some parts of the country.
Booking a room in advance is wise during the summer festival season.
The children built a sandcastle while their parents read under an umbrella.
The weather changed quickly, and by noon it was raining heavily.
A cold wind blew across the fields as the sun went down behind the hills.
Forests cover nearly a third of the land surface of the planet.
The river floods every spring and leaves a layer of rich soil on the plains.
Wolves live and hunt in family groups called packs.
Honeybees communicate the location of flowers with a special dance.
The desert is hot during the day but can be freezing at night.
Coral reefs support an enormous variety of fish, plants, and other animals.
Autumn leaves turn red and yellow as the trees stop producing chlorophyll.
The storm knocked down power lines and left thousands of homes without electricity.
Owls can turn their heads much farther than most other birds.
A gentle rain fell all night, and in the morning the garden looked fresh and green.
Computers store information as long sequences of ones and zeros.
The software update fixed several bugs and made the program run faster.
A good password is long, unpredictable, and never reused on another website.
Engineers designed the bridge to withstand strong winds and heavy loads.
The network slowed down when thousands of users connected at the same time.
Programmers write tests to make sure that their code behaves as expected.
The battery lasts for about ten hours of normal use.
Machine learning models learn patterns from large collections of examples.
The company released a new phone with a larger screen and a better camera.
Data is copied to a second server every night in case the first one fails.
The robot arm picks up parts from the conveyor belt and places them in boxes.
Open the settings menu and choose the language you prefer.
The website was down for an hour while the team repaired the database.
Every file in the archive is compressed to save space on the disk.
The algorithm sorts a list of one million numbers in less than a second.
The team won the championship after a dramatic final match.
She trained every morning for a year before running her first marathon.
The referee stopped the game because of the heavy rain.
Football is played by two teams of eleven players on a rectangular field.
The swimmer broke the national record by almost a full second.
Fans filled the stadium and sang loudly throughout the second half.
The coach asked the players to focus on defence during the practice session.
Chess requires patience, memory, and the ability to plan several moves ahead.
The tennis match lasted four hours and ended in a close tie break.
Cycling to work is good exercise and saves money on fuel.
The orchestra rehearsed the symphony three times before the concert.
She learned to play the violin when she was seven years old.
The song became popular after it was played on the radio every morning.
A piano has eighty-eight keys, some black and some white.
The band travelled from city to city in an old and noisy van.
Jazz musicians often improvise melodies over a familiar set of chords.
The choir sang in the cathedral, and the sound echoed under the high stone roof.
Drinking enough water helps the body regulate its temperature.
Regular exercise strengthens the heart and improves sleep.
The doctor recommended rest, fluids, and a week away from work.
Fruit and vegetables provide vitamins, minerals, and fibre.
Washing hands with soap is one of the simplest ways to prevent illness.
The nurse measured his blood pressure and wrote the numbers on a chart.
Getting enough sleep is important for memory and concentration.
The clinic opens early on weekdays and closes at noon on Saturdays.
Prices rose sharply after the harvest failed for the second year in a row.
The bank raised interest rates to slow down inflation.
Small businesses employ a large share of the workers in the region.
The factory closed, and many families had to look for work elsewhere.
Exports of coffee and cotton account for most of the national income.
The market value of the company doubled in less than two years.
Consumers spent more on travel and restaurants after the economy recovered.
The government invested in roads, ports, and schools to encourage growth.
Savings accounts usually pay a modest but reliable rate of interest.
The painter used bright colours and thick layers of paint.
The gallery is showing a collection of photographs from the early twentieth century.
The sculptor carved the statue from a single block of white marble.
Her novel tells the story of three sisters who inherit an old farm.
The poet wrote about the sea, the seasons, and the passing of time.
The film was shot in black and white in a small coastal town.
Critics praised the play for its sharp dialogue and clever plot.
The architect designed the library with tall windows that let in natural light.
Children learn to read more easily when adults read aloud to them.
The teacher asked the class to write a short essay about their summer holidays.
Students from many countries study together at the university.
The exam has three parts: reading, writing, and listening.
Learning a second language opens doors to new friendships and ideas.
The professor explained the problem slowly and drew a diagram on the board.
He forgot his keys and had to wait outside until his sister came home.
We usually eat dinner together at seven and talk about our day.
The neighbours planted tomatoes, beans, and sunflowers in their garden.
The cat slept in a patch of sunlight on the kitchen floor.
She wrote a shopping list: milk, eggs, bread, apples, and soap.
On Sundays the park is full of families, dogs, and people on bicycles.
The old clock in the hall stopped at a quarter past three.
He painted the fence white and fixed the broken gate.
The dog barked at the postman every morning without fail.
They moved to a bigger flat when their second child was born.
The shop on the corner sells newspapers, sweets, and postcards.
I left my umbrella on the bus and got soaked on the way home.
The meeting was moved from Tuesday to Thursday afternoon.
Please send the report by Friday so that we can review it on Monday.
The manager thanked everyone for their hard work during the busy season.
Our office is on the third floor, next to the elevators.
The package arrived two days late, but nothing inside was broken.
Could you tell me how to get to the train station from here?
What time does the museum close on weekends?
Why do some people find it easier to work early in the morning?
How long does it take to boil an egg so that the yolk stays soft?
Where did you learn to cook such delicious food?
It is easier to understand a difficult idea when you can see a picture of it.
Good writing is clear, concise, and honest about what it does not know.
A map is useful only if you know where you are standing.
Most problems become smaller once you break them into parts.
The first draft is rarely the best, so leave time to revise your work.
A careful reader notices what is missing as well as what is written.
Curiosity is often the beginning of a long and rewarding career.
Mistakes are part of learning, as long as we pay attention to them.
The village lies at the foot of a mountain, surrounded by orchards and vineyards.
In the spring the meadows are covered with wild flowers of every colour.
The lighthouse has guided ships safely into the bay for more than a century.
The road winds through pine forests before descending to the coast.
Fishermen mend their nets on the beach while gulls circle overhead.
A narrow path leads from the church to a small stone bridge over the stream.
The population of the town grew quickly after the railway station opened.
Local farmers bring cheese, honey, and vegetables to the market every Saturday.
The festival celebrates the end of the harvest with music, dancing, and food.
The island can be reached only by boat, and the crossing takes about an hour.
Winters are long and snowy, while summers are short, bright, and mild.
The valley is famous for its wine, its walnuts, and its ancient monastery.
People have argued about the meaning of freedom since the earliest written records.
A democracy depends on citizens who vote, ask questions, and hold leaders accountable.
The court ruled that the contract was valid, even though one signature was missing.
Lawyers for both sides presented their evidence to the judge and the jury.
The police investigated the robbery and interviewed every witness on the street.
Newspapers reported the election results late into the night.
The minister resigned after a scandal involving public money.
Parliament passed a law that protects workers from unfair dismissal.
Volunteers collected food and clothing for families affected by the flood.
The charity builds wells in villages that have no clean drinking water.
Religion, language, and music shape the identity of a community.
The philosopher asked whether a good life requires wealth or only wisdom.
Psychologists study how memory, emotion, and attention influence our decisions.
Children imitate the behaviour of the adults around them.
Friendship often begins with a shared joke or a small act of kindness.
Grief can arrive in waves, long after the loss that caused it.
He apologised sincerely, and she forgave him without hesitation.
The audience applauded enthusiastically when the performance ended.
Our conversation wandered from politics to gardening and back again.
The journey through the jungle was exhausting, humid, and full of insects.
Mosquitoes carry diseases such as malaria in many tropical regions.
The elephant is the largest living land animal.
Dolphins breathe air and must return to the surface regularly.
Butterflies begin their lives as caterpillars that eat leaves constantly.
Frogs lay their eggs in ponds, and the tadpoles hatch a few days later.
The snake shed its skin and slid silently under a rock.
Squirrels bury nuts in autumn and dig them up during the winter.
Penguins cannot fly, but they are excellent swimmers.
The giraffe uses its long neck to reach leaves at the top of tall trees.
Earthquakes happen when huge plates of rock suddenly slip past each other.
A hurricane gathers strength over warm ocean water.
Erosion slowly wears mountains down into hills and plains.
The climate of a region depends on its latitude, altitude, and distance from the sea.
Fossils preserve the shapes of plants and animals that lived long ago.
Copper, iron, and gold have been mined in these hills since ancient times.
The soil here is sandy and dries out quickly in summer.
Carbon dioxide traps heat in the atmosphere and warms the planet.
Solar panels convert sunlight directly into electricity.
Wind turbines are often built on hills or in shallow coastal waters.
Nuclear power stations produce a great deal of energy without burning fuel.
Recycling paper, glass, and metal reduces the amount of waste sent to landfill.
The microscope revealed thousands of tiny cells in a single drop of pond water.
Genes carry the instructions that cells use to build proteins.
The patient recovered fully after a successful operation on his knee.
Antibiotics kill bacteria but have no effect on viruses.
The surgeon washed her hands thoroughly before entering the operating theatre.
A balanced diet includes grains, vegetables, fruit, protein, and a little fat.
Calcium and vitamin D are needed for strong bones and teeth.
The pharmacy was crowded with people buying medicine for colds and coughs.
The ambulance arrived within minutes of the emergency call.
A thermometer measures temperature, and a barometer measures air pressure.
Astronomers discovered a planet orbiting a star about forty light years away.
The rocket launched at dawn and reached orbit eight minutes later.
Satellites relay television signals and help ships find their position.
The astronaut described the earth as a fragile blue marble floating in darkness.
Comets are made of ice and dust and grow bright tails near the sun.
The universe has been expanding since the big bang, about fourteen billion years ago.
Electricity flows through a circuit when a switch is closed.
A magnet attracts iron and steel but not wood or plastic.
Friction slows a moving object and turns some of its energy into heat.
The pendulum swings back and forth at a steady rhythm.
Chemists mixed the two liquids and watched the solution turn bright purple.
Salt dissolves easily in warm water.
Ice floats because it is less dense than liquid water.
The probability of rolling a six with a fair die is one in six.
Geometry studies points, lines, angles, surfaces, and solids.
An equation states that two expressions have the same value.
Statistics help us summarise large amounts of data and measure uncertainty.
The average of two, four, and nine is five.
Multiply the length by the width to find the area of a rectangle.
A circle is the set of points at a fixed distance from its centre.
The sum of the angles in a triangle is always one hundred and eighty degrees.
Ancient sailors used the stars to navigate across the open ocean.
The pyramids were built more than four thousand years ago.
The Romans built roads, aqueducts, and bridges across their empire.
Monks copied manuscripts by hand in quiet rooms called scriptoria.
The industrial revolution began in workshops, mills, and coal mines.
Women campaigned for decades before they won the right to vote.
The wall divided the city for almost thirty years.
Immigrants brought new foods, languages, and traditions to the country.
The harbour was busy with merchant ships loading wool, timber, and wine.
The emperor ordered a census to count every household in the realm.
Pilgrims walked hundreds of miles to visit the famous shrine.
The rebellion was crushed, but its leaders became heroes in popular songs.
Peasants paid rent to the landlord in labour, grain, and livestock.
The battle was fought in thick fog, and both armies lost their way.
The scholar translated the text from Greek into Latin and then into Arabic.
Writing was invented independently in several parts of the world.
Coins made trade easier than exchanging goods directly.
The ship sank during a storm, and its cargo still lies on the sea floor.
Knead the dough for ten minutes until it becomes smooth and elastic.
Grate the cheese and sprinkle it over the pasta just before serving.
Peel the potatoes, cut them into cubes, and boil them until tender.
Fry the onions slowly until they are soft and golden.
Add a spoonful of honey to balance the sourness of the sauce.
Serve the fish with boiled potatoes, green beans, and a slice of lemon.
The dumplings are steamed in bamboo baskets over boiling water.
Toast the spices in a dry pan to release their aroma.
The pancakes were light, fluffy, and covered in maple syrup.
Leftover soup can be frozen and reheated later in the week.
Strawberries, cream, and sugar make a simple summer dessert.
The waiter recommended the grilled vegetables and the mushroom risotto.
The tourists photographed the cathedral, the fountain, and the crowded square.
Our luggage was lost, so we bought toothbrushes and socks at the airport.
The border guard stamped our passports and waved us through.
The campsite had hot showers, a small shop, and a view of the glacier.
We hired a car and drove along the coast for three days.
The cable car carried us above the clouds to the summit.
The guesthouse owner gave us directions and a hand-drawn map.
Street vendors sold grilled corn, roasted chestnuts, and sweet tea.
The temple is open to visitors, but shoes must be removed at the entrance.
A thunderstorm delayed our departure, and we missed the connecting flight.
The canal boats move slowly through locks and under low bridges.
In winter the lake freezes, and people skate across it to the island.
The engineer replaced the faulty cable and restored power to the building.
A spreadsheet can calculate totals, averages, and percentages automatically.
The printer jammed again, so she sent the document by email instead.
Artificial intelligence is used to translate languages and recognise images.
The camera records video at sixty frames per second.
The server crashed because its disk was completely full.
A keyboard, a mouse, and a monitor are connected to the computer.
The app reminds users to drink water and take short breaks.
Encryption protects messages so that only the intended recipient can read them.
The developer refactored the function to make it shorter and easier to read.
Sensors measure humidity, light, and temperature inside the greenhouse.
The factory uses robots to weld the frames of cars.
The electric train is quiet, clean, and surprisingly fast.
The goalkeeper dived to the left and saved the penalty.
The runners crossed the finish line within a second of each other.
The basketball team practised free throws for an hour after the game.
Mountain climbers carry ropes, helmets, and extra food.
The golf ball rolled slowly across the green and dropped into the hole.
Skiing is popular in the northern villages from December to March.
The boxer trained by skipping rope and punching a heavy bag.
The crowd cheered as the horses thundered around the final bend.
The guitarist tuned her instrument carefully before the show.
The drummer kept a steady beat while the singer improvised.
Opera combines music, drama, costumes, and elaborate scenery.
The composer wrote the melody on a napkin in a crowded cafe.
Folk songs are passed from one generation to the next by ear.
The dancers moved gracefully across the stage in perfect time.
The photographer waited hours for the perfect light over the valley.
The museum restored the damaged fresco with great patience.
The comedian told jokes about airports, weddings, and his own mother.
The library lends books, music, films, and even musical instruments.
The manuscript was rejected by six publishers before it became a bestseller.
The magazine publishes interviews, reviews, and short stories every month.
The translator struggled to find an English word for the old proverb.
Kindergarten teachers use songs and games to teach counting and colours.
The school bus stops outside our house at eight every morning.
The graduates threw their caps into the air and hugged their families.
He studied engineering, but he later became a successful chef.
The lecture was recorded so that absent students could watch it later.
The homework was difficult, but she solved every problem on her own.
The scholarship paid for her tuition, books, and accommodation.
My uncle repairs old radios in a workshop behind his house.
The baby laughed every time the puppy licked her fingers.
We painted the bedroom a pale shade of green.
The refrigerator is almost empty, so we need to go shopping.
The washing machine makes a strange noise when it spins.
Grandfather tells the same story about the war every Christmas.
The twins look identical, but their personalities are very different.
The landlord promised to fix the leaking roof before winter.
She knitted a scarf for each of her grandchildren.
The neighbours complained about the noise from the party.
The candle flickered and went out when the door opened.
The kettle whistled, and he poured the water over the tea leaves.
After dinner we played cards and listened to the rain on the roof.
The customer asked for a refund because the shoes were too small.
The interview went well, and he was offered the job the next day.
Our profits increased because we reduced waste and improved quality.
The supplier delivered the materials a week earlier than promised.
The accountant checked every receipt and found a small error.
The startup hired ten new employees in its first year.
Shareholders approved the merger at the annual meeting.
Unemployment fell for the third consecutive month.
The farmer sold his wheat at a higher price than last year.
The price of bread is an important measure of everyday living costs.
""".strip().splitlines()

# A small grammar that mixes many common words, so that the corpus covers ordinary English vocabulary.
SUBJECTS = ["The farmer", "My brother", "A young doctor", "The old teacher", "Our neighbour", "The scientist",
            "A small child", "The pilot", "Her grandfather", "The engineer", "A tired traveller", "The captain",
            "The student", "Every visitor", "The baker", "A famous writer", "The mayor", "The gardener",
            "My aunt", "The driver", "A clever student", "The nurse", "The shopkeeper", "A local artist",
            "The government", "The committee", "Most people", "Several workers", "The children", "Our team"]
VERBS = ["carefully opened", "quickly repaired", "slowly read", "finally found", "proudly showed", "gently moved",
         "accidentally broke", "patiently explained", "happily described", "carefully measured",
         "suddenly noticed", "quietly cleaned", "eagerly discussed", "successfully finished", "briefly examined",
         "politely returned", "secretly copied", "loudly announced", "reluctantly accepted", "nervously signed",
         "recently bought", "often visited", "never understood", "always remembered", "barely recognised"]
OBJECTS = ["the wooden box", "an old letter", "the broken window", "a heavy suitcase", "the new machine",
           "a strange map", "the kitchen door", "a beautiful painting", "the annual report", "a leather bag",
           "the village school", "a set of instructions", "the garden gate", "a thick book", "the weather forecast",
           "a simple question", "the final exam", "a long journey", "the ancient temple", "a difficult problem",
           "the evening newspaper", "a silver ring", "the empty bottle", "a warm blanket", "the mountain road",
           "the company budget", "a small boat", "the train timetable", "a bowl of soup", "the hospital bill"]
ADVERBIALS = ["before breakfast", "after a long day at work", "in the middle of the night", "during the storm",
              "on a quiet Sunday morning", "at the end of the summer", "without saying a word",
              "with great care", "in front of the whole class", "despite the terrible weather",
              "while everyone else was asleep", "as soon as the sun rose", "for the first time in years",
              "because nobody else would do it", "near the edge of the forest", "just before the deadline",
              "under the light of an old lamp", "in less than an hour", "with the help of a friend",
              "although it was raining"]
CONNECTORS = ["Later", "Afterwards", "Meanwhile", "However", "Surprisingly", "Fortunately", "Unfortunately",
              "In the end", "At first", "Eventually", "Of course", "Naturally", "Still", "Then"]
OUTCOMES = ["everyone agreed that it had been worth the effort.", "the result was better than expected.",
            "nobody could explain what had happened.", "the problem turned out to be quite simple.",
            "the whole village talked about it for weeks.", "the plan had to be changed completely.",
            "it became clear that more time was needed.", "they decided to try again the next day.",
            "the mistake was discovered and quickly corrected.", "a new and better idea appeared.",
            "the work was finished ahead of schedule.", "the costs were much higher than planned."]


def grammar_sentences(rng, n):
    out = []
    for _ in range(n):
        s = f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)} {rng.choice(OBJECTS)} {rng.choice(ADVERBIALS)}."
        if rng.random() < 0.5:
            s += f" {rng.choice(CONNECTORS)}, {rng.choice(OUTCOMES)}"
        out.append(s)
    return out


# Held-out prose used only to measure tokens per word (never part of the training corpus).
HELD_OUT = """
The committee met on a rainy afternoon to discuss the future of the small harbour town.
Several members argued that tourism would bring money, while others worried about traffic and noise.
After a long debate, they agreed to build a modest visitor centre near the old fish market.
Meanwhile, a group of students from the university began to study the birds that nest on the cliffs.
They counted the nests every week and recorded the weather, the tides, and the number of boats in the bay.
Their results suggested that the colony had grown slowly over the past twenty years.
In the evenings the students cooked simple meals of pasta, beans, and fresh vegetables from the market.
One of them kept a diary, describing the colours of the sea and the sound of the wind against the windows.
Years later, that diary was printed as a short book and sold in the shop beside the lighthouse.
Scientists now believe that the warmer water has changed the fish that the birds depend on for food.
The mayor hopes that careful planning will protect both the wildlife and the livelihoods of local families.
Visitors are asked to stay on marked paths, to keep dogs on a lead, and to take their rubbish home.
""".strip()


def build_corpus():
    rng = random.Random(SEED)
    lines = []
    lines += shape_sentences(rng, 12000)
    lines += ocr_sentences(rng, 2500)
    lines += chat_snippets(rng, 600)
    lines += grammar_sentences(rng, 4000)
    # The hand-written prose is small, so repeat it (shuffled) to give its words weight against the shapes.
    for _ in range(12):
        block = list(PROSE)
        rng.shuffle(block)
        lines += block
    # Group lines into documents of a few sentences each, joined by spaces or newlines.
    docs = []
    i = 0
    while i < len(lines):
        k = rng.randint(1, 6)
        sep = " " if rng.random() < 0.7 else "\n"
        docs.append(sep.join(lines[i:i + k]))
        i += k
    rng.shuffle(docs)
    return docs


def build_tokenizer():
    tok = Tokenizer(models.BPE(unk_token=None, fuse_unk=False, byte_fallback=False))
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN2_SPLIT), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False)
    tok.post_processor = processors.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False)
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE - len(SPECIAL_TOKENS),
        min_frequency=2,
        show_progress=False,
        special_tokens=[],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(build_corpus(), trainer=trainer)
    # Special tokens go right after the BPE vocabulary (as in Qwen2), as whole, non-normalized added tokens.
    from tokenizers import AddedToken
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False, single_word=False, lstrip=False,
                                       rstrip=False) for t in SPECIAL_TOKENS])
    return tok


def check(tok):
    ids = {t: tok.token_to_id(t) for t in SPECIAL_TOKENS}
    for t, i in ids.items():
        enc = tok.encode(t, add_special_tokens=False)
        assert enc.ids == [i], (t, enc.ids)
    s = "<|vision_start|><|image_pad|><|image_pad|><|vision_end|>"
    enc = tok.encode(s, add_special_tokens=False)
    assert enc.ids == [ids["<|vision_start|>"], ids["<|image_pad|>"], ids["<|image_pad|>"],
                       ids["<|vision_end|>"]], enc.ids
    chat = "<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>What is this?<|im_end|>\n"
    enc = tok.encode(chat, add_special_tokens=False)
    assert enc.ids[0] == ids["<|im_start|>"] and ids["<|im_end|>"] in enc.ids
    assert tok.encode("hello", add_special_tokens=True).ids == tok.encode("hello", add_special_tokens=False).ids
    samples = [HELD_OUT, "A red circle at (12, 40), (200, 310).\n\tTabs,  double  spaces and 'quotes'!",
               "Price: $3.50 -- 100% [ok] {x: 1} a_b ~`^|\\/@#", "  leading and trailing spaces  ",
               "".join(chr(c) for c in range(32, 127))]
    for s in samples:
        assert tok.decode(tok.encode(s, add_special_tokens=False).ids, skip_special_tokens=False) == s, s
    assert tok.decode(enc.ids, skip_special_tokens=False) == chat
    # Unicode text also round-trips (byte level, no unknown tokens).
    u = "Ünïcödé — naïve café, 東京, emoji 🙂"
    assert tok.decode(tok.encode(u).ids) == u
    assert tok.get_vocab_size(with_added_tokens=True) == VOCAB_SIZE
    words = HELD_OUT.split()
    n_tok = len(tok.encode(HELD_OUT, add_special_tokens=False).ids)
    return ids, n_tok / len(words)


def main():
    tok = build_tokenizer()
    # The Python binding ignores the ByteLevel decoder's options; set them as Qwen2's tokenizer.json has them
    # (they do not change decoding) by editing the JSON and loading it back.
    d = json.loads(tok.to_str())
    d["decoder"] = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False}
    tok = Tokenizer.from_str(json.dumps(d))
    tok.save(OUT, pretty=False)
    # Round-trip through the file, as the Rust side will.
    tok = Tokenizer.from_file(OUT)
    ids, tpw = check(tok)
    with open(OUT, "rb") as f:
        data = f.read()
    json.loads(data)
    print(f"wrote {OUT}: {len(data)} bytes, sha256 {hashlib.sha256(data).hexdigest()[:16]}")
    print(f"vocab size (with added tokens): {tok.get_vocab_size(with_added_tokens=True)}")
    print("special token ids:", ", ".join(f"{t}={i}" for t, i in ids.items()))
    print(f"held-out prose: {tpw:.3f} tokens per whitespace word")
    enc = tok.encode("<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>What is this?<|im_end|>\n",
                     add_special_tokens=False)
    print("chatml example:", list(zip(enc.ids, enc.tokens)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
