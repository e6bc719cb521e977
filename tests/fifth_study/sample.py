"The toy study's declaration and its sample-data generator: all a study needs for the runner and the index to find it."
import numpy as np
from medrepro.sample import register, register_study

STUDY = register_study('fifth', 'A fifth study (toy, from tests/)', headlines=('evaluate/*headline*.csv',))

@register('fifth', n=20)
def fifth_sample(dest, n, seed):
    "Toy data: measurements.csv with n noisy values around 3."
    rng = np.random.default_rng(seed)
    rows = '\n'.join(f'{i},{v:.4f}' for i, v in enumerate(3 + rng.normal(size=n)))
    (dest/'measurements.csv').write_text('id,value\n' + rows + '\n')
